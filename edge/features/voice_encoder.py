"""Whisper encoder columns for the audio stream: what a voice carries beyond MFCC and prosody (issue 15, part 2).

A linear probe on Whisper tiny.en's encoder output reads valence in the voices of unseen actors far better than
on the 22 live audio columns (RAVDESS AUC 0.90 against 0.76, docs/results/affect/summary.md). This module computes
that output as the live audio extractor would have to: causally, in the extractor's fixed blocks, so streaming and
offline extraction stay bit-identical. It is not yet part of the feature spec (that needs every corpus
re-extracted and a new checkpoint); `tools/bench_voice_encoder.py` measures its cost.

The scheme ("blocks"). The stream is cut into blocks of B samples (the audio extractor's 320 ms, 8 model frames of
640 samples). After block b, the encoder runs on the last C samples (`context_s`, 4 s; fewer at the stream's
start), s = x[max(0, (b+1)B - C), (b+1)B), L = len(s), a multiple of 320:
  - log-mel M = Whisper's feature extractor on s: 80 x (L/160 + 1) frames, frame i centred on sample 160 i;
  - the encoder input is M followed by zero columns up to 100 ceil((L/160 + 1 + P) / 100) frames (P = `pad_s`
    x 100, Whisper's zero padding of a short input, as the live decodes trim it: edge.asr.bounded), at most 3000;
  - the encoder's output frame j is centred on sample 320 j of s (its second convolution has stride 2); the block's
    16 frames are j = (L - B)/320 .. L/320 - 1, and model frame k of the block (samples [640k, 640k + 640) of it)
    is the mean of frames 2k and 2k + 1 of those: 384 numbers per model frame (tiny's width).
Whisper's encoder attends over all of s, so a frame's values depend on up to C of audio before it, never after.

Cost: one encoder pass on at most C + pad seconds per block, about three a second (measured in BENCHMARKS.md).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.features.audio_quality import AudioInputError

logger = logging.getLogger(__name__)

ENCODER_HOP = 320  # samples per encoder output frame (10 ms mel hop x stride 2)
MEL_HOP = 160
WINDOW_FRAMES = 3000  # Whisper's 30 s input


@dataclass(frozen=True)
class VoiceEncoderConfig:
    """context_s: audio encoded per block; pad_s: seconds of Whisper's zero padding after it; block_samples and
    frame_samples: the audio extractor's block and model frame (16 kHz); threads: CTranslate2's CPU threads."""

    context_s: float = 4.0
    pad_s: float = 1.0
    block_samples: int = 5120
    frame_samples: int = 640
    sample_rate: int = 16000
    threads: int = 1

    def __post_init__(self) -> None:
        if self.sample_rate != 16000:
            raise AudioInputError(f"the Whisper encoder takes 16 kHz audio, not {self.sample_rate} Hz")
        if self.frame_samples % ENCODER_HOP:
            raise AudioInputError(f"frame_samples must be a multiple of {ENCODER_HOP}, got {self.frame_samples}")
        if self.block_samples % self.frame_samples:
            raise AudioInputError("block_samples must be a whole number of frames")
        if not self.block_samples <= self.context_samples <= WINDOW_FRAMES * MEL_HOP - MEL_HOP:
            raise AudioInputError(f"context_s must span at least one block and at most 30 s, got {self.context_s}")
        if not 0.0 <= self.pad_s <= 30.0:
            raise AudioInputError(f"pad_s must lie in [0, 30], got {self.pad_s}")
        if self.threads < 1:
            raise AudioInputError(f"threads must be >= 1, got {self.threads}")

    @property
    def context_samples(self) -> int:
        """C rounded down to whole blocks."""
        return int(self.context_s * self.sample_rate) // self.block_samples * self.block_samples


class VoiceEncoderColumns:
    """Feed whole blocks with `process(block)`; each call returns the block's model frames' encoder columns."""

    def __init__(
        self,
        config: VoiceEncoderConfig | None = None,
        *,
        model_dir: str | os.PathLike[str] | None = None,
        engines_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.config = config if config is not None else VoiceEncoderConfig()
        from edge.asr.transcriber import resolve_model_dir

        self.model_dir = Path(model_dir) if model_dir is not None else resolve_model_dir(None, engines_dir)
        self._model, self._storage, self._mel = _load(self.model_dir, self.config.threads)
        self.dim = int(self._encode(np.zeros(self.config.block_samples, np.float32)).shape[-1])
        self.reset()

    @property
    def names(self) -> tuple[str, ...]:
        from edge.features.audio_config import voice_encoder_names

        return voice_encoder_names(self.dim)

    def reset(self) -> None:
        """A new stream: the context is emptied."""
        self._context = np.zeros(0, np.float32)

    def process(self, block: np.ndarray, *, encode: bool = True) -> np.ndarray:
        """One block of mono float32 16 kHz samples -> [block frames, dim] float32. `encode=False` only takes
        the block into the context and returns zeros (offline extraction of frames no window will read: a
        later block's columns are the same either way, since the context is the raw samples)."""
        cfg = self.config
        x = np.asarray(block)
        if x.dtype != np.float32 or x.shape != (cfg.block_samples,):
            raise AudioInputError(
                f"process() takes one block of {cfg.block_samples} float32 samples, got {x.dtype} {x.shape}"
            )
        self._context = np.concatenate([self._context, x])[-cfg.context_samples :]
        if not encode:
            return np.zeros((cfg.block_samples // cfg.frame_samples, self.dim), np.float32)
        rows = block_rows(len(self._context), cfg)
        return self._encode(self._context)[rows].mean(axis=1, dtype=np.float32)

    def _encode(self, pcm: np.ndarray) -> np.ndarray:
        """The encoder's output frames for `pcm` (see the module docstring): [frames, dim]."""
        mel = self._mel(pcm)
        content = min(mel.shape[-1], WINDOW_FRAMES)
        n = min(WINDOW_FRAMES, 100 * math.ceil((content + round(self.config.pad_s * 100)) / 100))
        x = np.zeros((1, mel.shape[0], n), np.float32)
        x[0, :, :content] = mel[:, :content]
        out = self._model.encode(self._storage.from_array(x), to_cpu=True)
        return np.asarray(out)[0]


def block_rows(context_samples: int, cfg: VoiceEncoderConfig) -> np.ndarray:
    """[block frames, 2] encoder output rows averaged into each model frame of the newest block, for a context
    of `context_samples` ending with that block: frame j is centred on sample 320 j of the context."""
    first = (context_samples - cfg.block_samples) // ENCODER_HOP
    per_frame = cfg.frame_samples // ENCODER_HOP
    return first + np.arange(cfg.block_samples // ENCODER_HOP).reshape(-1, per_frame)


def _load(model_dir: Path, threads: int) -> tuple[Any, Any, Any]:
    """CTranslate2's Whisper (the encoder only is used) and Whisper's log-mel, imported on demand."""
    try:
        import ctranslate2
        from faster_whisper.feature_extractor import FeatureExtractor
    except ImportError as exc:  # pragma: no cover - both are runtime dependencies
        raise AudioInputError(f"the voice encoder needs faster-whisper and ctranslate2: {exc}") from None
    try:
        model = ctranslate2.models.Whisper(str(model_dir), device="cpu", compute_type="int8", intra_threads=threads)
    except (RuntimeError, ValueError, OSError) as exc:
        raise AudioInputError(
            f"cannot load the Whisper model in {model_dir} for the voice encoder: {exc}; rebuild it with "
            "`python tools/build_engine.py`"
        ) from None
    n_mels = int(getattr(model, "n_mels", 80))
    extractor = FeatureExtractor(feature_size=n_mels)
    return model, ctranslate2.StorageView, extractor
