"""Raw-media corruptions: what a noisy microphone, a bad camera or a struggling recogniser do to the signal
*before* the live extractors see it.

The Continuous Reliability Spectrum of `qamoe.spectrum` corrupts feature tensors. These corrupt the media:
speech PCM and camera frames, which then go through the real extractors, so the model (and its reliability
scores) learn and are measured on what a real fault looks like in the live feature space. Used by
tools/build_corpus.py for the `train_raw` and `test_raw` splits (docs/CORPUS.md) and by the reliability
fidelity evaluation (docs/MODEL_CARD.md).

Every corruption has one `severity` s in [0, 1] (0 = clean) mapped to its physical parameter:

  kind              modality  parameter at severity s
  audio_noise       audio     white noise at SNR = 30 - 35 s dB (30 dB .. -5 dB) over the utterance's power
  audio_dropout     audio     a share 0.9 s of the 100 ms blocks zeroed (a microphone cutting out)
  video_blur        vision    Gaussian blur, sigma = 0.03 s * min(height, width) px
  video_dark        vision    pixel values times (1 - 0.95 s) (an unlit room)
  video_occlusion   vision    a black rectangle over the frame centre covering 0.6 s of its area (a hand)
  video_frame_drop  vision    each 10 Hz step masked with probability 0.9 s (the live sampler masks a tick
                              with no frame within +-50 ms: a burst of dropped frames)
  asr_noise         text      the live ASR's text on speech with white noise at the audio_noise SNR (the
                              recogniser's real word errors and confidences; the audio stream is noisy too)

Pure functions with an explicit `numpy.random.Generator`: the same inputs and generator state give the same
output. numpy + OpenCV only; no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from qamoe.errors import ConfigError

AUDIO_KINDS = ("audio_noise", "audio_dropout")
VIDEO_KINDS = ("video_blur", "video_dark", "video_occlusion")  # applied to frames, then extracted
STEP_KINDS = ("video_frame_drop",)  # applied to the extracted 10 Hz steps
TEXT_KINDS = ("asr_noise",)
RAW_KINDS = AUDIO_KINDS + VIDEO_KINDS + STEP_KINDS + TEXT_KINDS
MODALITY_OF = {**{k: "audio" for k in AUDIO_KINDS}, **{k: "vision" for k in VIDEO_KINDS + STEP_KINDS},
               **{k: "text" for k in TEXT_KINDS}}
# the severities the corpus draws from (a corrupted face bank is extracted once per video kind and level)
LEVELS = (0.2, 0.4, 0.6, 0.8, 1.0)
DROPOUT_BLOCK_S = 0.1
RATE = 16000


class RawCorruptionError(ConfigError):
    """An unknown corruption kind or a severity outside [0, 1] (a ConfigError: exit 2)."""


@dataclass(frozen=True)
class RawCorruption:
    kind: str
    severity: float

    def __post_init__(self) -> None:
        if self.kind not in RAW_KINDS:
            raise RawCorruptionError(f"unknown raw corruption {self.kind!r}: use one of {', '.join(RAW_KINDS)}")
        if not 0.0 <= self.severity <= 1.0:
            raise RawCorruptionError(f"severity {self.severity} of {self.kind}: use a value in [0, 1]")

    @property
    def modality(self) -> str:
        return MODALITY_OF[self.kind]

    @property
    def parameter(self) -> float:
        """The physical parameter (module docstring's table)."""
        s = self.severity
        return {"audio_noise": snr_db(s), "asr_noise": snr_db(s), "audio_dropout": 0.9 * s,
                "video_blur": 0.03 * s, "video_dark": 1.0 - 0.95 * s, "video_occlusion": 0.6 * s,
                "video_frame_drop": 0.9 * s}[self.kind]

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "severity": self.severity, "parameter": round(self.parameter, 4)}


def snr_db(severity: float) -> float:
    return 30.0 - 35.0 * severity


def add_noise(pcm: np.ndarray, snr: float, rng: np.random.Generator) -> np.ndarray:
    """`pcm` plus white Gaussian noise at `snr` dB relative to its mean power, clipped to [-1, 1]."""
    x = np.asarray(pcm, np.float32)
    power = float(np.mean(np.square(x, dtype=np.float64))) if x.size else 0.0
    if power <= 0.0:
        return x.copy()
    noise = rng.standard_normal(x.size).astype(np.float32) * np.float32(np.sqrt(power / 10.0 ** (snr / 10.0)))
    return np.clip(x + noise, -1.0, 1.0).astype(np.float32)


def noise_floor(size: int, dbfs: float, rng: np.random.Generator) -> np.ndarray:
    """`size` samples of white Gaussian noise at `dbfs` RMS (a microphone's hiss: absolute, not relative to the
    signal as in `add_noise`), float32."""
    return rng.standard_normal(size).astype(np.float32) * np.float32(10 ** (dbfs / 20))


def drop_blocks(pcm: np.ndarray, share: float, rng: np.random.Generator, rate: int = RATE) -> np.ndarray:
    """`pcm` with a random `share` of its DROPOUT_BLOCK_S blocks set to zero."""
    x = np.asarray(pcm, np.float32).copy()
    block = max(1, round(DROPOUT_BLOCK_S * rate))
    n = -(-x.size // block)
    dropped = rng.random(n) < share
    for i in np.flatnonzero(dropped):
        x[i * block:(i + 1) * block] = 0.0
    return x


def corrupt_audio(pcm: np.ndarray, corruption: RawCorruption, rng: np.random.Generator) -> np.ndarray:
    """The speech a noisy or cutting-out microphone delivers (identity for non-audio kinds but asr_noise)."""
    if corruption.kind in ("audio_noise", "asr_noise"):
        return add_noise(pcm, corruption.parameter, rng)
    if corruption.kind == "audio_dropout":
        return drop_blocks(pcm, corruption.parameter, rng)
    return np.asarray(pcm, np.float32)


def corrupt_frame(frame: np.ndarray, corruption: RawCorruption) -> np.ndarray:
    """A BGR uint8 frame as a blurred, dark or occluded camera delivers it (identity for other kinds)."""
    h, w = frame.shape[:2]
    p = corruption.parameter
    if corruption.kind == "video_blur" and p > 0:
        return cv2.GaussianBlur(frame, (0, 0), sigmaX=p * min(h, w))
    if corruption.kind == "video_dark":
        return np.clip(np.rint(frame.astype(np.float32) * p), 0, 255).astype(np.uint8)
    if corruption.kind == "video_occlusion" and p > 0:
        out = frame.copy()
        side = np.sqrt(p)  # a rectangle with the frame's aspect covering a share p of its area
        rh, rw = round(h * side), round(w * side)
        top, left = (h - rh) // 2, (w - rw) // 2
        out[top:top + rh, left:left + rw] = 0
        return out
    return frame


def drop_steps(mask: np.ndarray, corruption: RawCorruption, rng: np.random.Generator) -> np.ndarray:
    """A vision window's mask with each step dropped with the frame-drop probability (a copy)."""
    if corruption.kind != "video_frame_drop":
        return mask.copy()
    return mask & (rng.random(mask.shape[0]) >= corruption.parameter)
