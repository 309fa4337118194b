"""What a source read returns: a status that says why it returned, the data, and its capture time.

`t_ns` is `time.monotonic_ns()` at capture for live devices and streams; in replay it is the start of the
replay plus the media time (so it stays monotonic, and in fast mode is identical across runs)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from edge.vocab import NS, SAMPLE_RATE  # every AudioChunk is mono float32 at SAMPLE_RATE


class ReadStatus(enum.Enum):
    OK = "ok"  # data is present
    TIMEOUT = "timeout"  # nothing arrived within the timeout; try again
    EOS = "eos"  # end of a file (replay without loop); nothing more will come
    ERROR = "error"  # the device or stream failed; the owner closes and reopens it


@dataclass(frozen=True, eq=False)
class VideoFrame:
    """One camera frame. `image` is BGR uint8 (H, W, 3) when status is OK, else None. `frozen` is True when
    the source has repeated the same picture (or not advanced its timestamp) for several reads in a row."""

    status: ReadStatus
    image: np.ndarray | None
    t_ns: int
    seq: int
    frozen: bool = False

    @property
    def ok(self) -> bool:
        return self.status is ReadStatus.OK


@dataclass(frozen=True, eq=False)
class AudioChunk:
    """Consecutive mono float32 samples at 16 kHz; `t_ns` is the time of the first sample. Empty unless OK."""

    status: ReadStatus
    samples: np.ndarray
    t_ns: int
    seq: int

    @property
    def ok(self) -> bool:
        return self.status is ReadStatus.OK

    @property
    def duration_s(self) -> float:
        return self.samples.shape[0] / SAMPLE_RATE

    @property
    def end_ns(self) -> int:
        """Time just after the last sample."""
        return self.t_ns + samples_to_ns(self.samples.shape[0])


def samples_to_ns(n: int, rate: int = SAMPLE_RATE) -> int:
    """Exact integer duration of n samples (no float drift over long runs)."""
    return n * NS // rate


def empty_chunk(status: ReadStatus, t_ns: int, seq: int) -> AudioChunk:
    return AudioChunk(status, np.zeros(0, np.float32), t_ns, seq)
