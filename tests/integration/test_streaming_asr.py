"""Streaming ASR: LocalAgreement commits, silence, bounded buffers; and the real Whisper on real speech."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from edge.asr.streaming import NS, SAMPLE_RATE, StreamingAsr, StreamingAsrConfig, StreamingConfigError, norm
from edge.asr.words import Word

SHARED = Path(__file__).resolve().parents[2].parent / "shared"


class Scripted:
    """A transcriber whose hypotheses are given in advance (to test the agreement logic exactly)."""

    def __init__(self, hypotheses: list[list[str]]) -> None:
        self.hypotheses = hypotheses
        self.calls: list[tuple[int, int, str | None]] = []

    def __call__(self, pcm: np.ndarray, t0_ns: int, *, prompt: str | None = None) -> list[Word]:
        self.calls.append((len(pcm), t0_ns, prompt))
        words = self.hypotheses[min(len(self.calls) - 1, len(self.hypotheses) - 1)]
        return [Word(w, t0_ns + i * NS // 4, t0_ns + (i + 1) * NS // 4, 0.9, -0.2, 0.01, 1.2) for i, w in enumerate(words)]


def _feed(asr: StreamingAsr, seconds: float, t_ns: int, speech: float = 0.9) -> list[Word]:
    asr.insert_audio(np.zeros(int(seconds * SAMPLE_RATE), np.float32), t_ns, speech_prob=speech)
    return asr.process()


def test_words_commit_only_when_two_hypotheses_agree() -> None:
    script = Scripted([["the"], ["the", "cat", "sad"], ["the", "cat", "sat", "on"], ["the", "cat", "sat", "on", "it"]])
    asr = StreamingAsr(script, StreamingAsrConfig(step_s=1.0))
    t = 0
    got = []
    for _ in range(4):
        got.append([w.text for w in _feed(asr, 1.0, t)])
        t += NS
    assert got == [[], ["the"], ["cat"], ["sat", "on"]]
    assert [w.text for w in asr.finish()] == ["it"]
    assert script.calls[3][2] is None  # committed words still in the buffer are not used as a prompt


def test_silence_is_not_transcribed_and_flushes_the_utterance() -> None:
    script = Scripted([["hello", "there"], ["hello", "there", "friend"]])
    asr = StreamingAsr(script, StreamingAsrConfig(step_s=1.0, flush_silence_s=0.8))
    _feed(asr, 1.0, 0)
    assert [w.text for w in _feed(asr, 1.0, NS)] == ["hello", "there"]
    out = _feed(asr, 1.0, 2 * NS, speech=0.0)
    assert [w.text for w in out] == ["friend"]  # end of utterance: the rest is committed
    assert asr.buffer_s <= asr.config.preroll_s + 1e-9 and len(script.calls) == 2  # only the lead-in is kept
    assert _feed(asr, 3.0, 3 * NS, speech=0.0) == [] and len(script.calls) == 2


def test_text_trimmed_out_of_the_buffer_becomes_the_prompt() -> None:
    script = Scripted([["a", "b", "c", "d"]] * 12)
    asr = StreamingAsr(script, StreamingAsrConfig(step_s=1.0, trim_s=2.0, max_buffer_s=10.0))
    for k in range(6):
        _feed(asr, 1.0, k * NS)
    assert any(prompt and prompt.startswith("a b") for _, _, prompt in script.calls)


def test_the_utterance_closes_as_soon_as_the_silence_is_long_enough() -> None:
    """Not one step later: the last words are committed after flush_silence_s of silence, chunk by chunk."""
    script = Scripted([["hello", "there"], ["hello", "there", "friend"]])
    asr = StreamingAsr(script, StreamingAsrConfig(step_s=1.0, flush_silence_s=0.5))
    _feed(asr, 1.0, 0)
    _feed(asr, 1.0, NS)
    got, t = [], 2 * NS
    for k in range(10):  # 0.1 s chunks of silence
        got.append([w.text for w in _feed(asr, 0.1, t, speech=0.0)])
        t += NS // 10
    assert got[:4] == [[]] * 4 and got[4] == ["friend"]  # at 0.5 s of silence, not at the next 1 s step


def _close_after(config: StreamingAsrConfig, silence_prob: float) -> float:
    """Seconds of silence (0.1 s chunks at `silence_prob`) after speech until the utterance's last word commits."""
    asr = StreamingAsr(Scripted([["hello", "there"], ["hello", "there", "friend"]]), config)
    _feed(asr, 1.0, 0)
    _feed(asr, 1.0, NS)
    for k in range(1, 21):
        if [w.text for w in _feed(asr, 0.1, 2 * NS + (k - 1) * NS // 10, speech=silence_prob)] == ["friend"]:
            return k / 10
    raise AssertionError("the utterance never closed")


def test_a_confident_silence_closes_the_utterance_sooner() -> None:
    config = StreamingAsrConfig(flush_silence_s=0.8, quick_flush_silence_s=0.5, quick_flush_max_prob=0.1)
    assert _close_after(config, silence_prob=0.02) == pytest.approx(0.5)  # the VAD is sure: quick close
    assert _close_after(config, silence_prob=0.3) == pytest.approx(0.8)  # silence, but not surely: the full wait
    same = StreamingAsrConfig(flush_silence_s=0.8, quick_flush_silence_s=0.8)
    assert _close_after(same, silence_prob=0.0) == pytest.approx(0.8)  # the quick close switched off


def test_one_unsure_verdict_in_the_silence_defers_the_quick_close() -> None:
    asr = StreamingAsr(Scripted([["a", "b"], ["a", "b", "c"]]), StreamingAsrConfig())
    _feed(asr, 1.0, 0)
    _feed(asr, 1.0, NS)
    probs = [0.02, 0.3, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02]  # 0.3: below the speech threshold, above the quick one
    got = [[w.text for w in _feed(asr, 0.1, 2 * NS + k * NS // 10, speech=p)] for k, p in enumerate(probs)]
    assert got[:7] == [[]] * 7 and got[7] == ["c"]  # closed at 0.8 s, not 0.5 s


def test_no_quick_close_before_a_decode_has_heard_words() -> None:
    """A click, then verdicts of silence that may lag a first word: only the full silence closes."""
    script = Scripted([["lay", "red"]])
    asr = StreamingAsr(script, StreamingAsrConfig(step_s=1.0, flush_silence_s=0.8, quick_flush_silence_s=0.5))
    _feed(asr, 0.1, 0, speech=0.9)
    got = [[w.text for w in _feed(asr, 0.1, (k + 1) * NS // 10, speech=0.02)] for k in range(8)]
    assert got[:7] == [[]] * 7 and got[7] == ["lay", "red"] and len(script.calls) == 1


@pytest.mark.parametrize(
    "kwargs",
    [{"quick_flush_silence_s": 0.9}, {"quick_flush_silence_s": 0.0}, {"quick_flush_max_prob": 0.5},
     {"quick_flush_max_prob": -0.1}],
)  # fmt: skip
def test_bad_quick_close_settings_are_refused(kwargs: dict) -> None:
    with pytest.raises(StreamingConfigError, match="quick_flush"):
        StreamingAsrConfig(flush_silence_s=0.8, **kwargs)


def test_leading_silence_is_not_buffered() -> None:
    asr = StreamingAsr(Scripted([["x"]]), StreamingAsrConfig(step_s=1.0, preroll_s=0.5))
    for k in range(30):
        _feed(asr, 0.1, k * NS // 10, speech=0.0)
    assert asr.buffer_s <= 0.5 + 1e-9


def test_a_word_that_begins_as_the_utterance_closes_keeps_its_onset() -> None:
    """The VAD's verdicts describe older audio: a spurious early "speech" then lets the leading silence close
    an utterance just as the first word begins. The next decode must still hear the word's onset."""
    script = Scripted([[], ["kids", "are"], ["kids", "are", "talking"]])
    asr = StreamingAsr(script, StreamingAsrConfig(step_s=1.0, flush_silence_s=0.8, preroll_s=0.5))
    onset = 850_000_000  # the word starts at 0.85 s; its first verdicts (silence) describe the audio before it
    _feed(asr, 0.1, 0, speech=0.9)  # a click at the start
    t = NS // 10
    for _ in range(9):  # >= 0.8 s of "silence" verdicts: the utterance closes at 1.0 s, inside the word
        _feed(asr, 0.1, t, speech=0.0)
        t += NS // 10
    assert len(script.calls) == 1 and asr.buffer_s == pytest.approx(0.5)  # closed, the lead-in kept
    for _ in range(12):  # the word's verdicts arrive
        _feed(asr, 0.1, t, speech=0.9)
        t += NS // 10
    first_decode_after_close = next(c for c in script.calls if c[1] > 0)
    assert first_decode_after_close[1] <= onset  # the buffer decoded starts before the word did


def test_buffer_is_bounded_even_without_agreement() -> None:
    hyps = [[f"w{i}"] for i in range(100)]  # never agree
    asr = StreamingAsr(Scripted(hyps), StreamingAsrConfig(step_s=1.0, trim_s=3.0, max_buffer_s=5.0))
    for k in range(20):
        _feed(asr, 1.0, k * NS)
        assert asr.buffer_s <= 5.0 + 1e-9
    assert asr.stats.forced_commits >= 3


def test_a_gap_in_the_audio_closes_the_utterance() -> None:
    script = Scripted([["a", "b"], ["a", "b", "c"], ["x"]])
    asr = StreamingAsr(script, StreamingAsrConfig(step_s=1.0))
    _feed(asr, 1.0, 0)
    _feed(asr, 1.0, NS)
    out = _feed(asr, 1.0, 10 * NS)  # 8 s later: device was lost
    assert "c" in [w.text for w in out]
    assert script.calls[-1][1] == 10 * NS  # the new buffer starts at the new time


def test_config_validation() -> None:
    with pytest.raises(StreamingConfigError):
        StreamingAsrConfig(step_s=5.0, max_step_s=3.0)
    with pytest.raises(StreamingConfigError):
        StreamingAsrConfig(trim_s=20.0, max_buffer_s=15.0)


@pytest.fixture(scope="module")
def transcriber():
    from edge.asr import Transcriber

    try:
        return Transcriber()
    except Exception as e:  # noqa: BLE001 - any failure to load (engines not built on this checkout) skips
        pytest.skip(f"whisper model not available ({e}): run python tools/build_engine.py")


@pytest.mark.slow
@pytest.mark.shared
def test_real_speech_streams_into_committed_words(transcriber) -> None:
    from edge.asr import load_audio_16k

    clip = SHARED / "media" / "grid" / "id2_vcd_swwp2s.mpg"
    if not clip.exists():
        pytest.skip(f"{clip} not found: the GRID clips live in ../shared/media/grid")
    pcm = load_audio_16k(clip)
    pcm = np.concatenate([pcm, np.zeros(SAMPLE_RATE, np.float32)])
    asr = StreamingAsr(transcriber.transcribe, StreamingAsrConfig(step_s=0.5))
    t0, chunk, words = 7 * NS, SAMPLE_RATE // 4, []
    for i in range(0, len(pcm), chunk):
        asr.insert_audio(pcm[i : i + chunk], t0 + i * NS // SAMPLE_RATE, speech_prob=None)
        words += asr.process()
    words += asr.finish()
    text = " ".join(norm(w.text) for w in words)
    expected = ["set", "white", "with", "p", "two", "soon"]
    hits = sum(1 for w in expected if re.search(rf"\b{w}\b", text) or (w == "two" and "2" in text))
    assert hits >= 4, text
    starts = [w.start_ns for w in words]
    assert starts == sorted(starts) and starts[0] >= t0
    assert len({(w.start_ns, norm(w.text)) for w in words}) == len(words)  # nothing committed twice


def test_finish_returns_the_words_its_last_decode_commits() -> None:
    """Regression: the final decode's agreed words were committed but not returned (so never published)."""
    asr = StreamingAsr(Scripted([["a", "b"], ["a", "b", "c"]]), StreamingAsrConfig(step_s=1.0))
    assert _feed(asr, 1.0, 0) == []
    asr.insert_audio(np.zeros(SAMPLE_RATE // 2, np.float32), NS, speech_prob=0.9)  # under a step: no decode yet
    assert [w.text for w in asr.finish()] == ["a", "b", "c"]


def test_a_repetitive_prompt_is_not_used() -> None:
    from edge.asr.streaming import usable_prompt

    said = "Set white with P2 soon."
    assert usable_prompt(said) == said
    assert usable_prompt("   ") is None
    assert usable_prompt(" ".join([said] * 8)[-200:]) is None  # a looped clip, a speaker repeating a phrase
    varied = "the quick brown fox jumps over the lazy dog while seven wizards quietly hex jumbled boxes"
    assert usable_prompt(varied) == varied
