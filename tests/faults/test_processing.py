"""Faults inside the pipeline, live: a GRID talking-face clip replayed in real time and looped (both tracks, as
`qamoe-live --video-file` does), the real extractors, ASR, ORT backend and publisher, a real ZeroMQ subscriber.

No real device makes Whisper, the ONNX session or a feature extractor fail on cue, so these faults are injected
by decorators around the real objects, switched on and off while the pipeline runs: the ASR's transcribe
function raises; the backend's infer raises on exactly one window; the visual extractor returns NaN and the
audio extractor +Inf for a while."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from edge.asr.bounded import LIVE_ENCODER_PAD_S
from edge.features.visual import VisualFrame
from edge.sources import ReplayConfig, parse_video_file
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

pytestmark = [pytest.mark.slow, pytest.mark.shared]

LOOP = ReplayConfig(realtime=True, loop=True)
ONE_WINDOW_S = 4.0 + 0.45 + 0.5
SLACK_S = 1.0


def _live(comps, clip: Path) -> Live:  # type: ignore[no-untyped-def]
    cam, mic = parse_video_file(str(clip))
    return Live(comps, cam, mic, replay=LOOP)


def test_asr_worker_raises(comps, clip: Path, monkeypatch: pytest.MonkeyPatch, record) -> None:  # type: ignore[no-untyped-def]
    asr = comps.asr.asr
    real, failing = asr._transcribe, threading.Event()

    def transcribe(*args, **kwargs):  # type: ignore[no-untyped-def]
        if failing.is_set():
            raise RuntimeError("injected: CTranslate2 out of memory")
        return real(*args, **kwargs)

    monkeypatch.setattr(asr, "_transcribe", transcribe)
    with _live(comps, clip) as live:
        live.first("transcript", lambda b: bool(b["words"]), 0, 30, "words before the fault")
        t_fault = now_ns()
        failing.set()
        health = live.first(
            "health", lambda b: device_state(b, "asr") == "absent", t_fault, 10, "health: asr absent"
        )
        detect_s = (sent_ns(health) - t_fault) / NS
        assert "injected" in health["devices"]["asr"]["detail"]
        assert health["queues"]["asr_decode"]["dropped"] >= 1  # the failed decodes' audio, counted
        # the text context is 8 s: wait until windows no longer carry words from before the fault
        quiet = live.first(
            "sentiment", lambda b: not present(b, "text"), t_fault, 15, "text absent while ASR fails"
        )
        assert present(quiet, "audio") and present(quiet, "vision") and quiet["valid"]
        t_back = now_ns()
        failing.clear()
        words = live.first(
            "transcript", lambda b: bool(b["words"]), t_back, 10, "words after the ASR recovered"
        )
        ok = live.first(
            "health", lambda b: device_state(b, "asr") == "ok", t_back, 10, "health: asr ok again"
        )
        outcome = live.stop()
    msgs = live.sub.messages
    check_stream(msgs)
    recover_s = (sent_ns(words) - t_back) / NS
    record(detect_health_s=detect_s, recover_words_s=recover_s, recover_health_s=(sent_ns(ok) - t_back) / NS,
           lost=lost(msgs), failed_decodes=live.of("health")[-1]["queues"]["asr_decode"]["dropped"])  # fmt: skip
    assert not outcome.thread_errors, outcome.thread_errors  # the ASR thread survived
    assert lost(msgs) == 0
    during = [b for b in live.of("sentiment", t_fault) if sent_ns(b) < t_back]
    assert during and all(b["valid"] for b in during)


def test_inference_raises_on_one_window(comps, clip: Path, monkeypatch: pytest.MonkeyPatch, record) -> None:  # type: ignore[no-untyped-def]
    backend = comps.backend
    real, arm = backend.infer, threading.Event()

    def infer(inputs):  # type: ignore[no-untyped-def]
        if arm.is_set():
            arm.clear()
            raise RuntimeError("injected: ONNX Runtime failed")
        return real(inputs)

    monkeypatch.setattr(backend, "infer", infer)
    with _live(comps, clip) as live:
        live.settle(3)
        t_fault = now_ns()
        arm.set()
        bad = live.first("sentiment", lambda b: not b["valid"], t_fault, 5, "the invalid window")
        live.first("sentiment", lambda b: b["seq"] >= bad["seq"] + 3, t_fault, 5, "three more windows")
        outcome = live.stop()
    msgs = live.sub.messages
    check_stream(msgs)  # the failed window kept its sequence number: no gap
    after = live.of("sentiment", t_fault)
    record(detect_s=(sent_ns(bad) - t_fault) / NS, invalid_windows=sum(not b["valid"] for b in after),
           lost=lost(msgs))  # fmt: skip
    assert [b["valid"] for b in after].count(False) == 1
    assert bad["invalid_reason"] == "inference failed: RuntimeError" and bad["valence"] is None
    assert all(b["valid"] and b["valence"] is not None for b in after if b is not bad)
    assert not outcome.thread_errors and lost(msgs) == 0


@pytest.mark.parametrize("modality", ["vision", "audio"])
def test_feature_extractor_returns_nan(
    comps,
    clip: Path,
    monkeypatch: pytest.MonkeyPatch,
    record,
    modality: str,  # type: ignore[no-untyped-def]
) -> None:
    broken = threading.Event()
    if modality == "vision":
        extractor = comps.vision.extractor
        real = extractor.process

        def process(image, t_ns):  # type: ignore[no-untyped-def]
            frame = real(image, t_ns)
            if not broken.is_set():
                return frame
            return VisualFrame(frame.t_ns, frame.present, np.full_like(frame.values, np.nan))

        monkeypatch.setattr(extractor, "process", process)
    else:
        extractor = comps.audio.extractor
        real = extractor.pop

        def pop():  # type: ignore[no-untyped-def]
            frames = real()
            if broken.is_set():
                frames.values[:] = np.inf
            return frames

        monkeypatch.setattr(extractor, "pop", pop)
    with _live(comps, clip) as live:
        live.first("sentiment", lambda b: present(b, modality), 0, 30, f"{modality} present before the fault")
        t_fault = now_ns()
        broken.set()
        masked = live.first(
            "sentiment", lambda b: b["window"]["start"]["mono_ns"] >= t_fault + NS // 2 and not present(b, modality),
            t_fault, ONE_WINDOW_S + SLACK_S + 1, f"the first window wholly after the fault with {modality} absent",
        )  # fmt: skip
        t_back = now_ns()
        broken.clear()
        back = live.first("sentiment", lambda b: present(b, modality), t_back, 5, f"{modality} present again")
        outcome = live.stop()
    msgs = live.sub.messages  # the subscriber's JSON parser would have refused a NaN
    check_stream(msgs)
    record(detect_window_s=(sent_ns(masked) - t_fault) / NS, recover_s=(sent_ns(back) - t_back) / NS,
           lost=lost(msgs))  # fmt: skip
    after = live.of("sentiment", t_fault)
    assert all(b["valid"] and np.isfinite(b["valence"]) for b in after), "a NaN feature reached the output"
    assert (sent_ns(masked) - t_fault) / NS <= ONE_WINDOW_S + SLACK_S
    assert (sent_ns(back) - t_back) / NS <= 2.0
    assert not outcome.thread_errors and lost(msgs) == 0
    # what the model saw: the broken steps masked and zeroed, never a non-finite number
    seen = [r for r in live.results if r.window.end_ns == masked["window"]["end"]["mono_ns"]]
    assert len(seen) == 1 and not seen[0].window.masks[modality].any()
    assert not seen[0].window.feats[modality].any()
    r_empty = empty_reliability(comps, modality)
    assert masked["modalities"][modality]["reliability"] == pytest.approx(r_empty, abs=1e-4)
    assert masked["modalities"][modality]["reliability"] <= 0.2  # the signal is gone: it counts (almost) nothing
    assert all(np.isfinite(r.window.feats[modality]).all() for r in live.results)


def test_live_asr_is_greedy_and_token_capped(comps) -> None:  # type: ignore[no-untyped-def]
    """Real time too (not only --fast): no temperature fallback, a bounded number of new tokens per decode, so one
    bad buffer cannot stall the ASR for tens of seconds (docs/RELIABILITY.md, the 30-minute soak)."""
    transcriber = comps.asr.asr._transcribe.__self__
    assert transcriber.config.temperatures == (0.0,)
    assert transcriber.config.max_tokens_per_s == 8.0
    # one decode per step on a trimmed encoder window: no 30 s window, no remainder seeks (edge.asr.bounded)
    assert transcriber.config.single_decode and transcriber.config.encoder_pad_s == LIVE_ENCODER_PAD_S
