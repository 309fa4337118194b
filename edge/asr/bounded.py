"""One bounded Whisper decode of a short streaming buffer: encode only what is there, decode it once.

faster-whisper (like Whisper) treats every call as long-form audio: it zero-pads the log-mel input to Whisper's
30 s window before the encoder, and after a decode whose last segment does not end in a timestamp it seeks to
the last word and decodes the remainder, each time paying the encoder on a fresh 30 s window. For a streaming
buffer of a few seconds that is re-decoded every step anyway, both are waste: the encoder on 30 s costs ~5x
the encoder on 6 s, and 6 of 15 streaming decodes of the GRID montage paid it twice (docs/BENCHMARKS.md).

This module removes both, for buffers shorter than the 30 s window:
  - `trimmed_frames(features, pad_frames)`: the encoder sees the content plus `pad_frames` frames of the zero
    padding, rounded up to whole seconds (100 frames), at most Whisper's 3000. Let F be the log-mel input
    (80 x 3000) whose trailing columns are faster-whisper's zero padding and c the number of content columns
    (the last column that is not all zero, + 1); the encoder gets F[:, :n] with
        n = min(3000, 100 * ceil((c + pad_frames) / 100)).
    CTranslate2's encoder accepts any even number of frames (the positional embedding is sliced).
  - a single decode without timestamp tokens (`without_timestamps=True`): Whisper then emits one segment
    for the whole buffer, words are timed by the cross-attention alignment as before, and the caller takes
    only that first segment, so the decoding loop never reaches a remainder.
Together with greedy decoding and the token cap (edge.asr.transcriber) one call costs at most one encoder pass on
<= 30 s, `max_new_tokens` decoder steps and one alignment pass, whatever the audio holds.

Why a pad at all: Whisper was trained on 30 s windows only, so how much trailing padding it sees changes what it
writes. Measured (tools/bench_asr_stream.py, docs/BENCHMARKS.md): 1 s of padding cost the most words, 3 s kept
the offline pass's word error rate on GRID and on spoken MOSI sentences, 6 s cost more CPU for no clear gain.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

FRAMES_PER_SECOND = 100  # Whisper's log-mel hop is 10 ms
WINDOW_FRAMES = 3000  # Whisper's 30 s input window


def trimmed_frames(features: np.ndarray, pad_frames: int) -> int:
    """How many leading frames of `features` ([..., n_mels, frames], zero-padded at the end) to encode."""
    frames = features.shape[-1]
    columns = features.reshape(-1, frames) if features.ndim > 1 else features[None]
    filled = np.flatnonzero(np.any(columns != 0, axis=0))
    content = int(filled[-1]) + 1 if filled.size else 0
    n = FRAMES_PER_SECOND * math.ceil((content + pad_frames) / FRAMES_PER_SECOND)
    return max(FRAMES_PER_SECOND, min(frames, WINDOW_FRAMES, n))


def bounded_whisper_class() -> type:
    """A `faster_whisper.WhisperModel` subclass whose encoder input is trimmed to `trimmed_frames`.

    Built on demand so that importing edge.asr does not import faster-whisper. Instances take the extra
    keyword `encoder_pad_frames` (None: Whisper's full window, the parent's behaviour)."""
    from faster_whisper import WhisperModel

    class BoundedWhisperModel(WhisperModel):
        def __init__(self, *args: Any, encoder_pad_frames: int | None = None, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.encoder_pad_frames = encoder_pad_frames

        def encode(self, features: np.ndarray) -> Any:
            if self.encoder_pad_frames is not None:
                features = np.ascontiguousarray(features[..., : trimmed_frames(features, self.encoder_pad_frames)])
            return super().encode(features)

    return BoundedWhisperModel


# The live pipeline's padding: of 1, 3 and 6 s, 3 s gave the lowest streaming WER on GRID and about the
# offline pass's WER on espeak-spoken MOSI sentences, at ~0.6x the cost of the 30 s window
# (tools/bench_asr_stream.py, docs/BENCHMARKS.md). edge.asr.transcriber.streaming_config applies it.
LIVE_ENCODER_PAD_S = 3.0
