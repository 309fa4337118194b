"""Thin capture workers: one thread per source that reads with a timeout and hands results to the pipeline
through a bounded buffer with a named drop policy (video: latest frame wins; audio: a ring sized in seconds).

A source that fails while running (ERROR, or `stall_timeouts` TIMEOUTs in a row from a live device) is closed
and reopened with capped exponential backoff (0.25 s doubling to 1 s: a device that returns is back within about
a second, and a reopen attempt costs little); meanwhile the worker's `state` is ABSENT, `detail` says why, and
`get()` returns ERROR statuses, never raises. The first good read after a reopen makes it LIVE again.
The consumer-side `state` is also ABSENT when nothing good arrived for `absent_after_s` (a read stuck in a
driver cannot report itself). An unexpected exception on the thread is logged with traceback, kept in
`error` for the supervisor, and leaves the modality ABSENT.
"""

from __future__ import annotations

import collections
import enum
import logging
import threading
import time
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from edge.sources import devices
from edge.sources.audio import AudioSource, AudioSourceStats
from edge.sources.buffers import AudioRing, LatestSlot
from edge.sources.errors import SourceConfigError, SourceError
from edge.sources.types import SAMPLE_RATE, AudioChunk, ReadStatus, VideoFrame, empty_chunk
from edge.sources.uri import CameraUri, MicUri
from edge.sources.video import VideoSource, VideoSourceStats

logger = logging.getLogger(__name__)

T = TypeVar("T", VideoFrame, AudioChunk)
T_co = TypeVar("T_co", VideoFrame, AudioChunk, covariant=True)  # what a source's read() returns


class ModalityState(enum.Enum):
    STARTING = "starting"  # started, no data yet
    LIVE = "live"  # data flowing
    ABSENT = "absent"  # the source failed or stalled; reconnecting with backoff
    ENDED = "ended"  # a replayed file reached its end (no loop)
    STOPPED = "stopped"


@dataclass(frozen=True)
class WorkerConfig:
    read_timeout_s: float = 0.5  # per source read; also bounds how long stop() waits for the thread
    backoff_initial_s: float = 0.25
    backoff_max_s: float = 1.0  # bounds the time from a device's return to its first frame
    backoff_factor: float = 2.0
    stall_timeouts: int = 4  # consecutive TIMEOUTs from a live source that count as a failure
    absent_after_s: float = 2.0  # no good read for this long reads as ABSENT on the consumer side
    audio_ring_s: float = 10.0  # the audio hand-off ring
    warn_every_s: float = 30.0  # while a source stays unavailable, repeat the warning this often

    def __post_init__(self) -> None:
        if not 0.01 <= self.read_timeout_s <= 1.5:
            raise SourceConfigError(
                f"read_timeout_s={self.read_timeout_s}: use 0.01-1.5 s so stop() stays prompt"
            )
        if not 0 < self.backoff_initial_s <= self.backoff_max_s or self.backoff_factor < 1:
            raise SourceConfigError("need 0 < backoff_initial_s <= backoff_max_s and backoff_factor >= 1")
        if self.stall_timeouts < 1 or min(self.absent_after_s, self.audio_ring_s, self.warn_every_s) <= 0:
            raise SourceConfigError("stall_timeouts must be >= 1; absent_after_s, audio_ring_s, warn_every_s > 0")


class Backoff:
    """Capped exponential delays: initial, initial*factor, ... up to max; reset() after a success."""

    def __init__(self, initial_s: float, max_s: float, factor: float) -> None:
        self.initial_s, self.max_s, self.factor = initial_s, max_s, factor
        self._next = initial_s

    def next(self) -> float:
        delay = self._next
        self._next = min(self.max_s, self._next * self.factor)
        return delay

    def reset(self) -> None:
        self._next = self.initial_s

    @property
    def upcoming_s(self) -> float:
        return self._next


@dataclass(frozen=True)
class WorkerStats:
    state: ModalityState
    items: int  # good items handed to the pipeline
    dropped: int  # items (video frames) or samples (audio, at 16 kHz) dropped by the hand-off buffer
    drop_policy: str
    queue_depth: float  # frames in the slot, or seconds in the audio ring
    timeouts: int
    errors: int
    failures: int  # times the source was declared failed
    reopen_attempts: int
    recoveries: int  # ABSENT -> LIVE transitions
    recent_backoff_s: tuple[float, ...]  # the last delays waited before reopen attempts
    source: VideoSourceStats | AudioSourceStats


class _Source(Protocol[T_co]):  # what a worker needs of VideoSource / AudioSource
    @property
    def uri(self) -> CameraUri | MicUri: ...
    @property
    def stats(self) -> VideoSourceStats | AudioSourceStats: ...

    def open(self) -> None: ...
    def close(self) -> None: ...
    def read(self, timeout_s: float = ...) -> T_co: ...

    @property
    def is_open(self) -> bool: ...


class _CaptureWorker(Generic[T]):
    modality = "?"

    def __init__(self, source: _Source[T], config: WorkerConfig | None = None) -> None:
        self.source: _Source[T] = source
        self.config = config or WorkerConfig()
        self.error: BaseException | None = None  # an unexpected exception that ended the thread
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state = ModalityState.STOPPED
        self._backoff = Backoff(
            self.config.backoff_initial_s, self.config.backoff_max_s, self.config.backoff_factor
        )
        self._delays: collections.deque[float] = collections.deque(maxlen=16)
        self._last_ok = time.monotonic()
        self._need_reopen = False
        self._counts = collections.Counter[str]()
        self._why: str | None = None  # why the source was last declared failed (health's detail)
        self._last_warning = float("-inf")

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Open the source here (so a missing device raises SourceNotFoundError to the caller) and start the
        capture thread."""
        if self._thread is not None:
            raise SourceError(f"{self.modality} worker already started: make a new worker to restart")
        if not self.source.is_open:
            self.source.open()
        self._state, self._last_ok = ModalityState.STARTING, time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"capture-{self.modality}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to finish; it does within about one read timeout. Does not wait (see join)."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread; True when it has ended."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def detail(self) -> str | None:
        """Why the modality is not live (None when it is), for health messages."""
        state = self.state
        if state is ModalityState.ABSENT:
            if self.error is not None:
                return f"capture failed: {type(self.error).__name__}: {self.error}"
            if self._state is not ModalityState.ABSENT:
                return f"no data for more than {self.config.absent_after_s:g} s"
            return f"{self._why or 'unavailable'}; reconnecting (next try within {self._backoff.upcoming_s:.2g} s)"
        if state is ModalityState.ENDED:
            return "end of file"
        return None

    @property
    def state(self) -> ModalityState:
        state = self._state
        stale = time.monotonic() - self._last_ok > self.config.absent_after_s
        if state in (ModalityState.LIVE, ModalityState.STARTING) and stale:
            return ModalityState.ABSENT
        return state

    # -- thread ----------------------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if self._need_reopen or not self.source.is_open:
                    self._reconnect()
                    continue
                item = self.source.read(self.config.read_timeout_s)
                if self._handle(item):
                    break
        except Exception as exc:  # surfaced to the supervisor through .error and the ABSENT state
            logger.exception("%s capture worker crashed", self.modality)
            self.error = exc
            self._state = ModalityState.ABSENT
        finally:
            self.source.close()
            if self._state is not ModalityState.ENDED and self.error is None:
                self._state = ModalityState.STOPPED

    def _handle(self, item: T) -> bool:
        """Deliver or account for one read; True when the thread should end (EOS)."""
        status = item.status
        if status is ReadStatus.OK:
            self._counts["timeouts_in_row"] = 0
            self._last_ok = time.monotonic()
            if self._state is not ModalityState.LIVE:
                if self._state is ModalityState.ABSENT:
                    self._counts["recoveries"] += 1
                    logger.info("%s source %s is back", self.modality, self.source.uri)
                self._state = ModalityState.LIVE
                self._backoff.reset()
            self._counts["items"] += 1
            self._deliver(item)
        elif status is ReadStatus.TIMEOUT:
            self._counts["timeouts"] += 1
            self._counts["timeouts_in_row"] += 1
            live = getattr(self.source.uri, "is_live", True)  # a paced file is only waiting, not stalled
            if live and self._counts["timeouts_in_row"] >= self.config.stall_timeouts:
                self._fail(f"stalled ({self._counts['timeouts_in_row']} timeouts in a row)")
        elif status is ReadStatus.EOS:
            logger.info("%s source %s reached its end", self.modality, self.source.uri)
            self._state = ModalityState.ENDED
            return True
        else:
            self._counts["errors"] += 1
            self._fail("read error")
        return False

    def _fail(self, why: str) -> None:
        self._counts["failures"] += 1
        self._counts["timeouts_in_row"] = 0
        self._why = why
        logger.warning(
            "%s source %s failed (%s): marked absent, reconnecting", self.modality, self.source.uri, why
        )
        self._state = ModalityState.ABSENT
        self.source.close()
        self._need_reopen = True

    def _reconnect(self) -> None:
        self._state = ModalityState.ABSENT
        delay = self._backoff.next()
        self._delays.append(delay)
        if self._stop.wait(delay):
            return
        self._counts["reopen_attempts"] += 1
        try:
            self._reopen()
        except SourceError as exc:
            # warn on the first failed try and then once per warn_every_s, not at every try
            now = time.monotonic()
            loud = now - self._last_warning >= self.config.warn_every_s
            if loud:
                self._last_warning = now
            (logger.warning if loud else logger.debug)(
                "%s source still unavailable (next try in %.2g s): %s",
                self.modality,
                self._backoff.upcoming_s,
                exc,
            )
            return
        self._need_reopen = False
        self._last_warning = float("-inf")
        logger.info("%s source %s reopened", self.modality, self.source.uri)

    def _reopen(self) -> None:
        self.source.close()
        self.source.open()

    def _deliver(self, item: T) -> None:
        raise NotImplementedError

    def _empty_status(self) -> ReadStatus:
        state = self.state
        if state is ModalityState.ENDED:
            return ReadStatus.EOS
        if state in (ModalityState.ABSENT, ModalityState.STOPPED):
            return ReadStatus.ERROR
        return ReadStatus.TIMEOUT

    def _stats(
        self, dropped: int, policy: str, depth: float, source_stats: VideoSourceStats | AudioSourceStats
    ) -> WorkerStats:
        c = self._counts
        return WorkerStats(
            state=self.state, items=c["items"], dropped=dropped, drop_policy=policy, queue_depth=depth,
            timeouts=c["timeouts"], errors=c["errors"], failures=c["failures"],
            reopen_attempts=c["reopen_attempts"], recoveries=c["recoveries"],
            recent_backoff_s=tuple(self._delays), source=source_stats.snapshot(),
        )  # fmt: skip


class VideoWorker(_CaptureWorker[VideoFrame]):
    """Captures frames into a latest-frame-wins slot; `get()` returns the newest frame or a status frame."""

    modality = "video"

    def __init__(self, source: VideoSource, config: WorkerConfig | None = None) -> None:
        super().__init__(source, config)
        self._slot: LatestSlot[VideoFrame] = LatestSlot()

    def _deliver(self, item: VideoFrame) -> None:
        self._slot.put(item)

    def get(self, timeout_s: float) -> VideoFrame:
        frame = self._slot.get(timeout_s)
        if frame is not None:
            return frame
        return VideoFrame(self._empty_status(), None, time.monotonic_ns(), self._counts["items"])

    def stats(self) -> WorkerStats:
        return self._stats(self._slot.dropped, LatestSlot.policy, self._slot.depth, self.source.stats)


class AudioWorker(_CaptureWorker[AudioChunk]):
    """Captures audio into a ring of `audio_ring_s` s (drop-oldest); `get()` returns contiguous audio."""

    modality = "audio"

    def __init__(self, source: AudioSource, config: WorkerConfig | None = None) -> None:
        super().__init__(source, config)
        self._ring = AudioRing(self.config.audio_ring_s, SAMPLE_RATE)
        self._seq = 0

    def _deliver(self, item: AudioChunk) -> None:
        self._ring.push(item.samples, item.t_ns)

    def _reopen(self) -> None:
        # each step logged at DEBUG: a device library that blocks shows where (see AudioSource.close)
        logger.debug("audio reopen: closing %s", self.source.uri)
        self.source.close()
        if not self.source.uri.is_file:
            logger.debug("audio reopen: rescanning devices")
            devices.rescan_audio()  # PortAudio lists devices only at initialisation; a returning one is new
        logger.debug("audio reopen: opening %s", self.source.uri)
        self.source.open()

    def get(self, timeout_s: float, max_s: float = 1.0) -> AudioChunk:
        """Up to max_s seconds of contiguous audio (what is buffered, waiting up to timeout_s for some)."""
        got = self._ring.pop(max(1, int(max_s * SAMPLE_RATE)), timeout_s)
        if got is None:
            return empty_chunk(self._empty_status(), time.monotonic_ns(), self._seq)
        self._seq += 1
        return AudioChunk(ReadStatus.OK, got[0], got[1], self._seq)

    def stats(self) -> WorkerStats:
        ring = self._ring
        return self._stats(ring.dropped_samples, AudioRing.policy, ring.buffered_s, self.source.stats)
