"""qamoe-live on a real-time microphone: the PulseAudio virtual mic (tests/support/pulse.py, the same tools/pulse_mic.sh
CI starts) opened by PortAudio as `--mic pulse`, espeak-ng speech played into it with paplay while the process
runs, and what a real ZeroMQ subscriber receives checked: words, windows, schema, sequence numbers, exit code."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.cli.liverun import LiveCommand, LiveRun
from edge.publish import validate
from tests.support.live_fixtures import free_endpoint, make_live_engines
from tests.support.pulse import VirtualMic, espeak_wav, virtual_mic_or_skip

pytestmark = pytest.mark.slow

SENTENCE = "I really enjoyed this movie, it was wonderful."
CONTENT_WORDS = ("really", "enjoyed", "movie", "wonderful")
DURATION_S = 16.0  # live from start-up: ~1 s of silence, ~3 s of speech, then time for the ASR to commit
LIVE_TIMEOUT_S = 90.0  # model loading on a loaded 2-core machine


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_live_engines(tmp_path_factory.mktemp("live_mic"))


@pytest.fixture(scope="module")
def mic() -> Iterator[VirtualMic]:
    with virtual_mic_or_skip() as running:
        yield running


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return espeak_wav(tmp_path_factory.mktemp("speech") / "review.wav", SENTENCE, "-s", "150")


def _gap_free(msgs: list[tuple[str, dict]]) -> None:
    for topic in {t for t, _ in msgs}:
        seqs = [b["seq"] for t, b in msgs if t == topic]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"{topic}: gaps in {seqs}"


def test_live_microphone_transcribes_speech_and_publishes_windows(
    engines: Path, mic: VirtualMic, speech: Path
) -> None:
    args = ("--camera", "none", "--mic", "pulse", "--duration", str(DURATION_S))
    # the virtual_mic fixture has put PULSE_SERVER / PULSE_SOURCE in os.environ: the child inherits them
    with LiveRun(LiveCommand(args, engines_dir=engines, endpoint=free_endpoint()), record=True) as run:
        run.wait(lambda: run.of("health"), LIVE_TIMEOUT_S, "going live (a health message)")
        time.sleep(1.0)  # a second of silence first: it must not turn into words
        played_ns = time.monotonic_ns()
        player = mic.play(speech)
        assert player.wait(20) == 0, player.stderr.read() if player.stderr else ""
        spoken_ns = time.monotonic_ns()
        outcome = run.finish(DURATION_S + 30)
    msgs, err = outcome.messages, outcome.stderr
    assert outcome.exit_code == 0, err
    assert "Traceback" not in err

    for topic, body in msgs:
        validate(topic, body)
    _gap_free(msgs)

    words = [w for b in outcome.of("transcript") for w in b["words"]]
    heard = " ".join(w["text"] for w in words).lower()
    hits = [w for w in CONTENT_WORDS if re.search(rf"\b{w}\b", heard)]
    assert len(hits) >= 3, f"heard {heard!r}"
    # words carry capture-clock times: within the playback (PulseAudio adds tens of ms, Whisper ~0.1 s jitter)
    assert all(
        played_ns - 0.5e9 <= w["start"]["mono_ns"] <= w["end"]["mono_ns"] <= spoken_ns + 1e9 for w in words
    )

    sentiment = outcome.of("sentiment")
    assert len(sentiment) >= 10, len(sentiment)  # one every 0.5 s over most of the run
    assert all(b["modalities"]["audio"]["present"] for b in sentiment)
    assert not any(b["modalities"]["vision"]["present"] for b in sentiment)  # --camera none
    before = [b for b in sentiment if b["window"]["end"]["mono_ns"] < played_ns]
    after = [b for b in sentiment if b["window"]["end"]["mono_ns"] > words[0]["start"]["mono_ns"]]
    assert before and not any(b["modalities"]["text"]["present"] for b in before)  # silence gave no words
    assert any(b["modalities"]["text"]["present"] and b["transcript"] for b in after)
    assert all(b["valid"] for b in sentiment)

    health = outcome.of("health")
    assert health and health[-1]["devices"]["microphone"]["state"] == "ok"
    guards = {k: q for k, q in health[-1]["queues"].items() if k.startswith("asr_guard_")}
    assert set(guards) == {f"asr_guard_{r}" for r in ("low_confidence", "unvoiced", "collapsed", "fragment_run", "repeat")}
    assert all(q["policy"] == "commit_guard" and q["dropped"] >= 0 for q in guards.values())
