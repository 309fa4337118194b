"""Time-aligned sliding windows over the live streams, filled by timestamp (thread-free).

Every sample arrives with its monotonic capture time; windows are defined in seconds. Window i ends at
t0 + (i+1)*hop and covers [end - length, end): the first estimate comes one hop after the start, its earlier
slots (before t0) simply empty, rather than a whole window length later. Each framed stream (audio at 25 Hz, vision at 10 Hz) is cut into
`max_steps` equal slots of 1/rate seconds; slot j holds the sample whose timestamp falls in it (the latest one
if several do) and its mask is True only if a *valid* sample landed there, so a lost device, a dropped frame or
a frame without a face is a masked step, never a shifted sequence. Words (text) are kept with their times and
handed over with the window (those that end within `text_context_s` before the window's end); the text encoder
turns them into token steps.

A window is released by `pop_ready(now_ns)` once `now_ns >= end + lateness`: `lateness` covers the extractors'
buffering (the audio extractor emits in 320 ms blocks). In live mode `now_ns` is the monotonic clock, so a
window closes on time even when a device has died; in fast replay it is the media clock.

push()/pop_ready() only: the same object runs live, in replay and in unit tests.
"""

from __future__ import annotations

import bisect
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge.errors import UsageError
from edge.vocab import NS, Word

log = logging.getLogger(__name__)



class WindowConfigError(UsageError, ValueError):
    """A window geometry that cannot work; the message says what to change (exit 2)."""


@dataclass(frozen=True)
class StreamGeometry:
    name: str
    rate_hz: float
    max_steps: int
    dim: int


@dataclass(frozen=True)
class WindowConfig:
    length_s: float = 4.0
    hop_s: float = 0.5
    lateness_s: float = 0.45
    text_context_s: float = 8.0
    max_pending_windows: int = 8  # beyond this, the oldest unreleased windows are dropped (and counted)

    def __post_init__(self) -> None:
        if not 0 < self.hop_s <= self.length_s:
            raise WindowConfigError(f"need 0 < hop_s <= length_s, got hop {self.hop_s} s, length {self.length_s} s")
        if self.hop_s > 1.0:
            raise WindowConfigError(f"hop_s {self.hop_s} s: the product promises an estimate at least every second")
        if self.lateness_s < 0 or self.text_context_s < 0:
            raise WindowConfigError("lateness_s and text_context_s must be >= 0")
        if self.max_pending_windows < 1:
            raise WindowConfigError("max_pending_windows must be >= 1")


@dataclass
class Window:
    index: int
    start_ns: int
    end_ns: int
    feats: dict[str, np.ndarray]  # stream -> [max_steps, dim] float32
    masks: dict[str, np.ndarray]  # stream -> [max_steps] bool
    words: list[Word]

    def presence(self) -> dict[str, bool]:
        return {name: bool(m.any()) for name, m in self.masks.items()}


class _Stream:
    """Samples of one framed stream, ordered by time, trimmed as windows are released."""

    def __init__(self, geom: StreamGeometry) -> None:
        self.geom = geom
        self.times: list[int] = []
        self.values: list[np.ndarray] = []
        self.valid: list[bool] = []
        self.late = 0

    def push(self, t_ns: int, values: np.ndarray, valid: bool) -> None:
        if self.times and t_ns < self.times[-1]:
            self.late += 1  # out of order: insert in place (rare: clock resync)
            i = bisect.bisect_right(self.times, t_ns)
            self.times.insert(i, t_ns)
            self.values.insert(i, values)
            self.valid.insert(i, valid)
            return
        self.times.append(t_ns)
        self.values.append(values)
        self.valid.append(valid)

    def fill(self, start_ns: int) -> tuple[np.ndarray, np.ndarray]:
        g = self.geom
        out = np.zeros((g.max_steps, g.dim), np.float32)
        mask = np.zeros(g.max_steps, bool)
        slot_ns = NS / g.rate_hz
        lo = bisect.bisect_left(self.times, start_ns)
        hi = bisect.bisect_left(self.times, start_ns + round(g.max_steps * slot_ns))
        for i in range(lo, hi):
            j = int((self.times[i] - start_ns) // slot_ns)
            if 0 <= j < g.max_steps:
                if self.valid[i]:
                    out[j] = self.values[i]
                    mask[j] = True
                elif not mask[j]:
                    out[j] = 0.0
        return out, mask

    def trim(self, before_ns: int) -> None:
        k = bisect.bisect_left(self.times, before_ns)
        if k:
            del self.times[:k], self.values[:k], self.valid[:k]


class WindowAssembler:
    def __init__(self, config: WindowConfig, streams: Sequence[StreamGeometry], t0_ns: int) -> None:
        self.config = config
        self.t0_ns = int(t0_ns)
        self._streams = {g.name: _Stream(g) for g in streams}
        self._words: deque[Word] = deque()
        self._next = 0
        self.dropped_windows = 0
        for g in streams:
            covered = g.max_steps / g.rate_hz
            if abs(covered - config.length_s) > 1e-6:
                raise WindowConfigError(
                    f"{g.name}: {g.max_steps} steps at {g.rate_hz} Hz cover {covered} s, not the window's"
                    f" {config.length_s} s: the feature spec and the window config disagree"
                )

    def push(self, stream: str, t_ns: int, values: np.ndarray, valid: bool = True) -> None:
        try:
            self._streams[stream].push(int(t_ns), values, bool(valid))
        except KeyError:
            raise KeyError(f"unknown stream {stream!r}; known: {sorted(self._streams)}") from None

    def push_words(self, words: Sequence[Word]) -> None:
        self._words.extend(sorted(words, key=lambda w: w.end_ns))

    def window_bounds(self, index: int) -> tuple[int, int]:
        end = self.t0_ns + round((index + 1) * self.config.hop_s * NS)
        return end - round(self.config.length_s * NS), end

    def pop_ready(self, now_ns: int) -> list[Window]:
        """Every window whose end + lateness has passed, oldest first (bounded by max_pending_windows)."""
        late_ns = int(self.config.lateness_s * NS)
        ready = []
        while self.window_bounds(self._next)[1] + late_ns <= now_ns:
            ready.append(self._next)
            self._next += 1
        if len(ready) > self.config.max_pending_windows:
            skipped = len(ready) - self.config.max_pending_windows
            self.dropped_windows += skipped
            log.warning("fell %d windows behind: skipping the oldest (counted as dropped)", skipped)
            ready = ready[skipped:]
        windows = [self._build(i) for i in ready]
        if ready:
            self._trim(self.window_bounds(self._next)[0])
        return windows

    def _build(self, index: int) -> Window:
        start, end = self.window_bounds(index)
        feats, masks = {}, {}
        for name, s in self._streams.items():
            feats[name], masks[name] = s.fill(start)
        ctx_start = end - int(self.config.text_context_s * NS)
        words = [w for w in self._words if ctx_start <= w.end_ns <= end]
        return Window(index=index, start_ns=start, end_ns=end, feats=feats, masks=masks, words=words)

    def _trim(self, next_start_ns: int) -> None:
        for s in self._streams.values():
            s.trim(next_start_ns)
        horizon = next_start_ns + int((self.config.length_s - self.config.text_context_s) * NS)
        while self._words and self._words[0].end_ns < horizon:
            self._words.popleft()
