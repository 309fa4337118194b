"""Decoding recorded media (any container/codec FFmpeg reads) to the ASR's input: mono float32 at 16 kHz."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from edge.asr.transcriber import SAMPLE_RATE, AsrInputError
from edge.pyav import mono_resampler

logger = logging.getLogger(__name__)


def load_audio_16k(path: str | os.PathLike[str]) -> np.ndarray:
    """The first audio stream of `path`, down-mixed to mono and resampled to 16 kHz (FFmpeg's resampler via
    PyAV), as float32 in [-1, 1]. Raises AsrInputError when the file cannot be read or has no audio."""
    import av  # local: PyAV comes with faster-whisper; only file input needs it

    path = Path(path)
    resampler = mono_resampler()
    chunks: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AsrInputError(f"{path} has no audio stream: pass a file with sound")
            for frame in container.decode(audio=0):
                chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
            chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))  # flush
    except (av.error.FFmpegError, OSError) as exc:
        raise AsrInputError(f"cannot decode audio from {path}: {exc}; check the file or convert it") from exc
    audio = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    logger.debug("%s: %.2f s of audio at %d Hz", path, audio.shape[0] / SAMPLE_RATE, SAMPLE_RATE)
    return audio
