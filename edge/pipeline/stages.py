"""Thread-free pipeline steps. Each turns one kind of input into the next, with timestamps as data.

VisionStage  camera frames -> 10 Hz face/expression samples (FrameSampler picks the frame nearest each tick)
AudioStage   PCM chunks    -> 25 Hz audio frames, and the chunk's speech probability for the ASR gate
AsrStage     PCM chunks    -> committed words (LocalAgreement streaming ASR)
WindowStage  all of those  -> windows (WindowAssembler) -> model inputs -> QA-MoE outputs
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.asr.streaming import StreamingAsr
from edge.asr.words import Word
from edge.backends.base import Backend
from edge.features.audio import AudioFeatureExtractor
from edge.features.spec import FeatureSpec
from edge.features.text import TextEncoder
from edge.features.visual import FrameSampler, VisualFeatureExtractor, VisualFrame
from edge.sources.types import AudioChunk, ReadStatus, VideoFrame
from edge.vocab import MODALITIES
from edge.windows import StreamGeometry, Window, WindowAssembler, WindowConfig

log = logging.getLogger(__name__)

VAD_COLUMN = "vad_speech_prob"


@dataclass(frozen=True)
class StreamSample:
    """One step for the window assembler: stream name, capture time, values, and whether it is valid."""

    stream: str
    t_ns: int
    values: np.ndarray
    valid: bool


class VisionStage:
    def __init__(self, extractor: VisualFeatureExtractor, rate_hz: float) -> None:
        self.extractor = extractor
        self.rate_hz = rate_hz
        self.sampler: FrameSampler[VideoFrame] = FrameSampler(rate_hz)
        self.frozen_frames = 0
        # the newest frame analysed and what was found in it (for --share-frames: the box belongs to the picture)
        self.latest: tuple[VideoFrame, VisualFrame] | None = None

    def reset(self) -> None:
        self.sampler = FrameSampler(self.rate_hz)
        self.frozen_frames = 0
        self.latest = None

    def push(self, frame: VideoFrame) -> list[StreamSample]:
        if frame.status is not ReadStatus.OK or frame.image is None:
            return []
        out = []
        for sample in self.sampler.push(frame.t_ns, frame):
            out.append(self._sample(sample.tick_ns, sample.frame))
        return out

    def finish(self) -> list[StreamSample]:
        return [self._sample(s.tick_ns, s.frame) for s in self.sampler.finish()]

    def _sample(self, tick_ns: int, frame: VideoFrame | None) -> StreamSample:
        if frame is None or frame.image is None:  # (push() hands over only frames with an image)
            vf = VisualFrame.absent(tick_ns)
        else:
            vf = self.extractor.process(frame.image, tick_ns)
            self.latest = (frame, vf)
        # a frozen camera shows a face that is not live: the modality is not trusted, as if absent
        valid = vf.present and not (frame is not None and frame.frozen)
        if frame is not None and frame.frozen:
            self.frozen_frames += 1
        return StreamSample("vision", tick_ns, vf.values, valid)


class AudioStage:
    def __init__(self, extractor: AudioFeatureExtractor) -> None:
        self.extractor = extractor
        self._vad = extractor.names.index(VAD_COLUMN)
        self._started = False

    def reset(self) -> None:
        """Start a new stream: the extractor's clock is re-anchored at the next chunk."""
        self._started = False

    def push(self, chunk: AudioChunk) -> tuple[list[StreamSample], float | None]:
        """Feature frames completed by this chunk, and their mean speech probability (None: no frame yet)."""
        if chunk.status is not ReadStatus.OK or chunk.samples is None or len(chunk.samples) == 0:
            return [], None
        if not self._started:
            self.extractor.reset(chunk.t_ns)
            self._started = True
        self.extractor.push(chunk.samples, chunk.t_ns)
        return self._frames(self.extractor.pop())

    def finish(self) -> list[StreamSample]:
        if not self._started:
            return []
        self.extractor.finish()
        return self._frames(self.extractor.pop())[0]

    def _frames(self, frames: Any) -> tuple[list[StreamSample], float | None]:
        if len(frames) == 0:
            return [], None
        out = [StreamSample("audio", int(t), v, True) for t, v in zip(frames.t_ns, frames.values, strict=True)]
        speech = float(np.mean(frames.values[:, self._vad]))
        # a broken VAD output says nothing about speech: None lets the ASR decide (its own guards drop silence)
        return out, speech if math.isfinite(speech) else None


class AsrStage:
    """Feeds the streaming ASR; `speech_prob` is the VAD's verdict on the latest audio (None: unknown yet).

    A decode that raises must not end the transcript for good: the failure is logged and counted, the ASR's
    buffer (the audio of the utterance in progress, whose words are lost) is dropped and counted, and the next
    chunk starts afresh. `last_error` stays set until a decode succeeds again (health shows it)."""

    def __init__(self, asr: StreamingAsr) -> None:
        self.asr = asr
        self._last_speech: float | None = None
        self.failures = 0
        self.dropped_s = 0.0  # audio discarded with failed decodes
        self.last_error: str | None = None

    def push(self, chunk: AudioChunk, speech_prob: float | None) -> list[Word]:
        if chunk.status is not ReadStatus.OK or chunk.samples is None or len(chunk.samples) == 0:
            return []
        if speech_prob is not None and math.isfinite(speech_prob):
            self._last_speech = speech_prob
        return self._guarded(lambda: self._step(chunk))

    def _step(self, chunk: AudioChunk) -> list[Word]:
        self.asr.insert_audio(chunk.samples, chunk.t_ns, speech_prob=self._last_speech)
        decodes = self.asr.stats.transcriptions
        words = self.asr.process()
        if self.asr.stats.transcriptions > decodes:
            self.last_error = None
        return words

    def finish(self) -> list[Word]:
        return self._guarded(self.asr.finish)

    def reset(self) -> None:
        self.asr.reset()
        self._last_speech = None

    def _guarded(self, step: Callable[[], list[Word]]) -> list[Word]:
        try:
            return step()
        except Exception as e:  # one failed decode must not end the transcript: drop its audio, count, go on
            self.failures += 1
            self.dropped_s += self.asr.buffer_s
            self.last_error = f"{type(e).__name__}: {e}"
            log.warning(
                "ASR decode failed (%s): %.1f s of audio dropped, starting afresh (%d failures so far)",
                self.last_error, self.asr.buffer_s, self.failures, exc_info=log.isEnabledFor(logging.DEBUG),
            )
            self.asr.reset()
            return []


@dataclass
class WindowResult:
    window: Window
    outputs: dict[str, np.ndarray] | None
    error: str | None
    latency_ms: dict[str, float]

    @property
    def transcript(self) -> str:
        return " ".join(w.text for w in self.window.words)


class WindowStage:
    """Owns the assembler and the backend (exactly one thread calls it)."""

    def __init__(
        self, spec: FeatureSpec, text: TextEncoder, backend: Backend, window: WindowConfig, t0_ns: int
    ) -> None:
        self.spec, self.text, self.backend = spec, text, backend
        geoms = [
            StreamGeometry(s, spec.stream(s).required_rate_hz(), spec.stream(s).max_steps, spec.stream(s).dim)
            for s in ("audio", "vision")
        ]
        self.assembler = WindowAssembler(window, geoms, t0_ns)
        self.failures = 0

    def push(self, sample: StreamSample) -> None:
        if not np.all(np.isfinite(sample.values)):  # a broken extractor output is a missing step, not a NaN
            self.assembler.push(sample.stream, sample.t_ns, np.zeros_like(sample.values), False)
            return
        self.assembler.push(sample.stream, sample.t_ns, sample.values, sample.valid)

    def push_words(self, words: list[Word]) -> None:
        self.assembler.push_words(words)

    def ready(self, now_ns: int) -> list[WindowResult]:
        return [self.infer(w) for w in self.assembler.pop_ready(now_ns)]

    def infer(self, window: Window) -> WindowResult:
        t0 = time.perf_counter()
        try:
            text_vals, text_mask = self.text.encode_words(window.words)
            inputs = {"text_feats": text_vals[None], "text_mask": text_mask[None]}
            for s in ("audio", "vision"):
                inputs[f"{s}_feats"] = window.feats[s][None]
                inputs[f"{s}_mask"] = window.masks[s][None]
            window.masks["text"] = text_mask
            t1 = time.perf_counter()
            outputs = {k: np.asarray(v)[0] for k, v in self.backend.infer(inputs).items()}
            t2 = time.perf_counter()
        except Exception as e:  # one bad window must not stop the stream: publish it as invalid
            self.failures += 1
            log.warning("window %d: inference failed (%s): published as invalid", window.index, e)
            log.debug("inference failure", exc_info=True)
            window.masks.setdefault("text", np.zeros(1, bool))
            return WindowResult(window, None, f"inference failed: {type(e).__name__}", {})
        return WindowResult(window, outputs, None, {"features": (t1 - t0) * 1e3, "inference": (t2 - t1) * 1e3})


def class_probs(valence: float, variance: float, band: float) -> dict[str, float]:
    """P(negative / neutral / positive) under the model's predictive Gaussian N(valence, variance): the mass
    below -band, between, and above +band (the polarity thresholds of the wire format)."""
    sd = math.sqrt(max(variance, 1e-12))

    def cdf(x: float) -> float:
        return 0.5 * (1.0 + math.erf((x - valence) / (sd * math.sqrt(2.0))))

    neg, pos = cdf(-band), 1.0 - cdf(band)
    return {"negative": neg, "neutral": max(0.0, 1.0 - neg - pos), "positive": pos}


def reliabilities(outputs: Mapping[str, np.ndarray]) -> dict[str, float]:
    return {m: float(outputs[f"reliability_{m}"]) for m in MODALITIES}
