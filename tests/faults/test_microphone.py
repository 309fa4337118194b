"""Microphone faults, live: a real-time virtual microphone (a private PulseAudio daemon, tools/pulse_mic.sh) opened
by PortAudio as `--mic pulse`, the real extractors, ASR, ORT backend and publisher, a real ZeroMQ subscriber.

Injected for real: the microphone's server killed (SIGKILL) and started again; silence (nothing played);
espeak-ng speech played into it clean, mixed with white noise at 0 dB SNR, and amplified into hard clipping.
What must happen: the process keeps publishing gap-free; a lost microphone is detected in health and masked in
the windows and is back within 2 s of its return; a degraded one stays present (it is data) and its quality
columns say what is wrong (the model's reliability reads them; a random-init test model's reliability is not
meaningful, so the tests assert the columns the model is given)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from edge.features.audio_config import AUDIO_FEATURE_NAMES
from edge.sources import parse_mic
from tests.faults.harness import (
    NS,
    Live,
    check_stream,
    device_state,
    empty_reliability,
    lost,
    now_ns,
    present,
    sent_ns,
)
from tests.faults.pulse_ctl import PrivateMic, read_wav, write_wav
from tests.support.pulse import espeak_wav

pytestmark = pytest.mark.slow

ONE_WINDOW_S = 4.0 + 0.45 + 0.5
SLACK_S = 1.0
STEP_NS = 40_000_000  # audio model frames: 25 Hz
SENTENCE = "I really enjoyed this movie, it was wonderful."


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same sentence clean, at 0 dB SNR in white noise (a noisy room: the noise starts 3.5 s before the
    speech, so that the rolling 3 s noise-floor estimate has heard it), and clipped (x20, then the 16-bit limit)."""
    d = tmp_path_factory.mktemp("speech")
    clean = espeak_wav(d / "clean.wav", SENTENCE, "-s", "160")
    x, rate = read_wav(clean)
    x = np.concatenate([x, np.zeros(rate // 2, np.float32)])  # a tail of silence closes the utterance
    voiced = np.abs(x) > 0.02
    power = float(np.mean(x[voiced] ** 2))
    lead = np.zeros(int(3.5 * rate), np.float32)
    noise = np.random.default_rng(0).normal(0.0, np.sqrt(power), lead.size + x.size).astype(np.float32)
    return {
        "clean": write_wav(d / "clean16.wav", x, rate),
        "noisy": write_wav(d / "noisy.wav", np.concatenate([lead, x]) + noise, rate),  # speech power = noise
        "clipped": write_wav(d / "clipped.wav", x * 20.0, rate),
    }


def _live(comps) -> Live:  # type: ignore[no-untyped-def]
    return Live(comps, None, parse_mic("pulse"))


def steps(live: Live, column: str, t0_ns: int, t1_ns: int) -> np.ndarray:
    """The values of one audio column of the valid steps captured in [t0, t1], from the windows the model saw."""
    col = AUDIO_FEATURE_NAMES.index(column)
    seen: dict[int, float] = {}
    for r in list(live.results):
        w = r.window
        for j in np.flatnonzero(w.masks["audio"]):
            t = w.start_ns + int(j) * STEP_NS
            if t0_ns <= t <= t1_ns:
                seen[t] = float(w.feats["audio"][j, col])
    return np.array([seen[t] for t in sorted(seen)], np.float32)


def _play(mic: PrivateMic, wav: Path) -> tuple[int, int]:
    t0 = now_ns()
    player = mic.play(wav)
    assert player.wait(30) == 0, player.stderr.read() if player.stderr else ""
    return t0, now_ns()


def test_microphone_disappears_and_comes_back(comps, mic_env: PrivateMic, record, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG, logger="edge.sources")  # on failure, the log shows which device call blocked
    with _live(comps) as live:
        live.first("sentiment", lambda b: present(b, "audio"), 0, 30, "audio present before the fault")
        t_fault = now_ns()
        mic_env.kill()
        health = live.first("health", lambda b: device_state(b, "microphone") != "ok", t_fault, 6,
                            "health showing the microphone gone")  # fmt: skip
        masked = live.first(
            "sentiment", lambda b: b["window"]["start"]["mono_ns"] >= t_fault + NS // 2 and not present(b, "audio"),
            t_fault, ONE_WINDOW_S + SLACK_S + 1, "the first window wholly after the loss with audio absent",
        )  # fmt: skip
        mic_env.start()  # returns once the server delivers audio again: the device is back
        t_back = now_ns()
        back = live.first("sentiment", lambda b: present(b, "audio"), t_back, 10, "audio present again")
        ok = live.first(
            "health", lambda b: device_state(b, "microphone") == "ok", t_back, 10, "health ok again"
        )
        outcome = live.stop()
    msgs = live.sub.messages
    check_stream(msgs)
    detect_s, recover_s = (sent_ns(health) - t_fault) / NS, (sent_ns(back) - t_back) / NS
    record(detect_health_s=detect_s, detect_window_s=(sent_ns(masked) - t_fault) / NS, recover_s=recover_s,
           recover_health_s=(sent_ns(ok) - t_back) / NS, lost=lost(msgs))  # fmt: skip
    assert not outcome.thread_errors and lost(msgs) == 0
    assert (sent_ns(masked) - t_fault) / NS <= ONE_WINDOW_S + SLACK_S
    r_empty = empty_reliability(comps, "audio")  # no audio step at all reached the model
    assert masked["modalities"]["audio"]["reliability"] == pytest.approx(r_empty, abs=1e-4)
    assert masked["modalities"]["audio"]["reliability"] <= 0.2  # the signal is gone: it counts (almost) nothing
    assert recover_s <= 2.0, f"audio back in the stream {recover_s:.2f} s after the microphone returned"
    assert all(b["valid"] for b in live.of("sentiment", t_fault))
    gone = [b for b in live.of("health", t_fault) if device_state(b, "microphone") == "absent"]
    assert gone and all(b["devices"]["microphone"]["detail"] for b in gone)  # says why


def test_microphone_silence(comps, mic_env: PrivateMic, record) -> None:  # type: ignore[no-untyped-def]
    # nothing is played: the microphone works and hears nothing. Audio stays present (silence is data: the
    # energy and VAD columns say it), no word is invented, text is absent.
    with _live(comps) as live:
        t0 = live.settle(2)
        live.first("sentiment", lambda b: b["window"]["start"]["mono_ns"] >= t0, t0, ONE_WINDOW_S + SLACK_S + 1,
                   "a window wholly in the silence")  # fmt: skip
        outcome = live.stop()
    msgs = live.sub.messages
    check_stream(msgs)
    energy, vad = steps(live, "log_energy_db", t0, now_ns()), steps(live, "vad_speech_prob", t0, now_ns())
    record(lost=lost(msgs), max_energy_db=float(energy.max()), max_vad=float(vad.max()))
    assert not outcome.thread_errors and lost(msgs) == 0
    assert not live.of("transcript"), "words were invented from silence"
    sentiment = live.of("sentiment", t0)
    assert all(present(b, "audio") and not present(b, "text") and b["valid"] for b in sentiment)
    assert all(device_state(b, "microphone") == "ok" for b in live.of("health", t0))
    assert energy.size > 50 and energy.max() <= -60.0 and vad.max() < 0.2


def test_microphone_noise_at_0db_snr_and_clipping(  # type: ignore[no-untyped-def]
    comps, mic_env: PrivateMic, speech: dict[str, Path], record
) -> None:
    # the same sentence clean, then in white noise at 0 dB SNR, then clipped (one run for both faults: they
    # share the clean reference). The stream goes on, audio stays present and valid, the microphone stays ok,
    # and the quality column the model weighs the audio by moves the right way.
    with _live(comps) as live:
        live.settle(2)
        spans = {kind: _play(mic_env, speech[kind]) for kind in ("clean", "noisy", "clipped")}
        end = spans["clipped"][1]
        live.first("sentiment", lambda b: b["window"]["end"]["mono_ns"] >= end, end, 5, "the last window")
        outcome = live.stop()
    msgs = live.sub.messages
    check_stream(msgs)
    assert not outcome.thread_errors and lost(msgs) == 0

    def median(column: str, span: tuple[int, int]) -> float:  # over the steps the VAD calls speech
        values, vad = steps(live, column, *span), steps(live, "vad_speech_prob", *span)
        return float(np.median(values[vad >= 0.5] if (vad >= 0.5).sum() >= 10 else values))

    snr = {k: median("snr_db", spans[k]) for k in ("clean", "noisy")}
    clip = {k: median("clip_frac", spans[k]) for k in ("clean", "clipped")}
    record.case = "test_microphone_noise_at_0db_snr"
    record(lost=0, snr_db_clean=snr["clean"], snr_db_noisy=snr["noisy"])
    record.case = "test_microphone_clipping"
    record(lost=0, clip_frac_clean=clip["clean"], clip_frac_clipped=clip["clipped"])
    during = live.of("sentiment", spans["noisy"][0])
    assert during and all(present(b, "audio") and b["valid"] for b in during)
    assert all(device_state(b, "microphone") == "ok" for b in live.of("health", spans["clean"][0]))
    assert snr["noisy"] <= 10.0 and snr["noisy"] < snr["clean"] - 10.0, snr
    assert clip["clean"] < 0.01 and clip["clipped"] > 0.05, clip
