"""Microphone and audio-file input, always delivered as mono float32 at 16 kHz (`AudioChunk`).

Two implementations sit behind one type, as in jetson-utils' `videoSource::Create(uri)`:
- `MicrophoneSource` (`edge.sources.audio_device`): a live input through PortAudio, stamped in its callback;
- `AudioFileSource` (`edge.sources.audio_file`): a WAV or any media FFmpeg reads, replayed on the media clock.
This module holds what they share: the config, the stats, the open/read/close frame with its status and emit
helpers, and the choice between them.

`edge.sources.factory.open_audio_source(config)` builds the implementation the URI needs, as
`videoSource::Create(uri)` does; `AudioSource` is the type callers hold, annotate and check. The base is abstract:
subclass the implementation you mean (`AudioFileSource`, `MicrophoneSource`).
"""

from __future__ import annotations

import abc
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np

from edge.sources.errors import SourceConfigError, SourceOpenError
from edge.sources.replay import ReplayConfig
from edge.sources.types import SAMPLE_RATE, AudioChunk, ReadStatus, empty_chunk
from edge.sources.uri import MicKind, MicUri


@dataclass(frozen=True)
class AudioSourceConfig:
    """`chunk_s`: most audio one read returns. `ring_s`: device buffer between the callback and read().
    `stall_s`: a device silent (no callbacks) this long reads as ERROR. `latency`: PortAudio 'low'/'high'.
    `release_s`: longest wait for PortAudio to close a device stream before it is abandoned (see `close()`)."""

    uri: MicUri
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    chunk_s: float = 0.1
    ring_s: float = 2.0
    stall_s: float = 2.0
    latency: str = "low"
    release_s: float = 2.0

    def __post_init__(self) -> None:
        if not isinstance(self.uri, MicUri):
            raise SourceConfigError("uri: parse the --mic string with edge.sources.parse_mic first")
        if self.uri.kind is MicKind.NONE:
            raise SourceConfigError("--mic none has no AudioSource: run the pipeline without audio instead")
        if not 0.01 <= self.chunk_s <= 5.0:
            raise SourceConfigError(f"chunk_s={self.chunk_s}: use 0.01-5 s (0.1 s is typical)")
        if not self.chunk_s < self.ring_s <= 600:
            raise SourceConfigError(f"ring_s={self.ring_s}: must exceed chunk_s and be at most 600 s")
        if not 0.1 <= self.stall_s <= 60:
            raise SourceConfigError(f"stall_s={self.stall_s}: use 0.1-60 s")
        if not 0.1 <= self.release_s <= 60:
            raise SourceConfigError(f"release_s={self.release_s}: use 0.1-60 s")
        if self.latency not in ("low", "high"):
            raise SourceConfigError(f"latency={self.latency!r}: use 'low' or 'high'")


@dataclass
class AudioSourceStats:
    chunks: int = 0
    samples: int = 0  # at 16 kHz, delivered
    timeouts: int = 0
    errors: int = 0
    passes: int = 0  # completed passes over a file
    device_overflows: int = 0  # PortAudio reported input overflow (samples lost before our callback)
    ring_dropped_samples: int = 0  # dropped by our ring (reader too slow), at the capture rate
    clock_resyncs: int = 0
    gap_samples: int = 0  # at 16 kHz: lost before our callback (xruns, a stalled process): clock gaps
    capture_rate: int = SAMPLE_RATE
    abandoned_streams: int = 0  # device streams PortAudio did not close in release_s (MicrophoneSource.close)

    def snapshot(self) -> AudioSourceStats:
        return dataclasses.replace(self)


def frames_to_mono(frames: list[Any]) -> np.ndarray:
    """PyAV mono frames -> one float32 array (empty for no frames)."""
    if not frames:
        return np.zeros(0, np.float32)
    return np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.float32, copy=False)


class AudioSource(abc.ABC):
    """open() / read(timeout_s) / close() over one mic URI. read() is for one owner thread.
    `open_audio_source(config)` (edge.sources.factory) builds the implementation for the URI."""

    def __init__(self, config: AudioSourceConfig) -> None:
        self.config = config
        self.uri = config.uri
        self.stats = AudioSourceStats()
        self._seq = 0
        self._opened = False  # open() succeeded at least once: a later loss reads as ERROR

    # -- lifecycle -------------------------------------------------------------------------------------------
    def open(self) -> None:
        """Open the file or device. Raises SourceNotFoundError / SourceOpenError / SourceBackendError."""
        self.close()
        self._open()
        self._opened = True

    @abc.abstractmethod
    def _open(self) -> None:
        """Open the file or device (the source is closed when this is called)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the device or file."""

    @property
    @abc.abstractmethod
    def is_open(self) -> bool: ...

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ---------------------------------------------------------------------------------------------
    def read(self, timeout_s: float = 1.0) -> AudioChunk:
        """Up to chunk_s of audio, or an empty chunk with status TIMEOUT / EOS / ERROR. Never raises for a
        failing device or file; raises SourceOpenError only if called before open()."""
        if not self.is_open:
            if self._opened:  # lost mid-run (e.g. a looped file gone): the owner reopens
                return self._status(ReadStatus.ERROR)
            raise SourceOpenError(f"audio source {self.uri} is not open: call open() first")
        return self._read(timeout_s)

    @abc.abstractmethod
    def _read(self, timeout_s: float) -> AudioChunk:
        """read() of an open source."""

    def _status(self, status: ReadStatus) -> AudioChunk:
        if status is ReadStatus.TIMEOUT:
            self.stats.timeouts += 1
        elif status is ReadStatus.ERROR:
            self.stats.errors += 1
        return empty_chunk(status, time.monotonic_ns(), self._seq)

    def _emit(self, samples: np.ndarray, t_ns: int) -> AudioChunk:
        self._seq += 1
        self.stats.chunks += 1
        self.stats.samples += samples.shape[0]
        return AudioChunk(ReadStatus.OK, samples, t_ns, self._seq)
