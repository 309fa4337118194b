"""Bounded hand-offs between a capture thread and its reader, each with a named drop policy and drop counters.

- `LatestSlot` (video): latest frame wins; a frame overwritten before anyone took it counts as a drop.
- `AudioRing` (audio): a ring sized in seconds; on overflow the oldest samples go and are counted.
Both are thread-safe and never block a producer; consumers wait with a timeout.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Generic, TypeVar

import numpy as np

from edge.sources.errors import SourceConfigError
from edge.sources.types import SAMPLE_RATE, samples_to_ns

T = TypeVar("T")

# Blocks whose timestamps differ from the running sample clock by less than this are contiguous. One
# sample at 16 kHz is 62.5 us; the margin absorbs integer rounding of per-block stamps.
_CONTIGUOUS_NS = 200_000


class LatestSlot(Generic[T]):
    """A one-item buffer: `put` replaces what is there (drop policy "latest frame wins")."""

    policy = "latest-wins"

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self.puts = 0
        self.dropped = 0

    def put(self, item: T) -> None:
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self.puts += 1
            self._cond.notify_all()

    def get(self, timeout_s: float) -> T | None:
        """The newest item, or None after `timeout_s` without one."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._cond:
            while self._item is None:
                left = deadline - time.monotonic()
                if (left <= 0 or not self._cond.wait(left)) and self._item is None:
                    return None
            item, self._item = self._item, None
            return item

    def clear(self) -> None:
        with self._cond:
            self._item = None

    @property
    def depth(self) -> int:
        return 0 if self._item is None else 1


class AudioRing:
    """Mono float32 samples with the monotonic time of each block's first sample, capacity in seconds.

    `push(samples, t_ns)` never blocks; beyond capacity the oldest samples are dropped (policy "drop-oldest")
    and counted. `pop(max_samples, timeout_s)` returns a contiguous run (never across a time gap) and the
    time of its first sample."""

    policy = "drop-oldest"

    def __init__(self, capacity_s: float, rate: int = SAMPLE_RATE) -> None:
        if not capacity_s > 0:
            raise SourceConfigError(f"ring capacity {capacity_s} s: give a positive number of seconds")
        self.rate = rate
        self.capacity = max(1, round(capacity_s * rate))
        self._cond = threading.Condition()
        self._blocks: collections.deque[tuple[np.ndarray, int]] = collections.deque()
        self._size = 0
        self.pushed_samples = 0
        self.dropped_samples = 0
        self.overflows = 0  # pushes that had to drop something

    def push(self, samples: np.ndarray, t_ns: int) -> None:
        block = np.asarray(samples, np.float32).reshape(-1)
        if block.shape[0] == 0:
            return
        with self._cond:
            if block.shape[0] > self.capacity:  # keep the newest part of an oversized block
                cut = block.shape[0] - self.capacity
                t_ns += samples_to_ns(cut, self.rate)
                self.dropped_samples += cut
                self.overflows += 1
                block = block[cut:]
            self._blocks.append((block.copy(), t_ns))
            self._size += block.shape[0]
            self.pushed_samples += block.shape[0]
            if self._size > self.capacity:
                self.overflows += 1
                self._drop_front(self._size - self.capacity)
            self._cond.notify_all()

    def _drop_front(self, n: int) -> None:
        self.dropped_samples += n
        self._size -= n
        while n > 0:
            block, t_ns = self._blocks[0]
            if block.shape[0] <= n:
                self._blocks.popleft()
                n -= block.shape[0]
            else:
                self._blocks[0] = (block[n:], t_ns + samples_to_ns(n, self.rate))
                n = 0

    def pop(self, max_samples: int, timeout_s: float, min_samples: int = 1) -> tuple[np.ndarray, int] | None:
        """Up to `max_samples` contiguous samples once at least `min_samples` are buffered (or a time gap ends
        the run early); at the timeout whatever is buffered, or None if nothing is."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._cond:
            while self._size < min(min_samples, max_samples) and not self._gap_within(min_samples):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return self._take(max_samples) if self._size else None

    def _gap_within(self, n: int) -> bool:
        """True when a time discontinuity occurs within the first n buffered samples."""
        seen = 0
        for i in range(1, len(self._blocks)):
            prev, prev_t = self._blocks[i - 1]
            seen += prev.shape[0]
            if seen >= n:
                return False
            if abs(self._blocks[i][1] - (prev_t + samples_to_ns(prev.shape[0], self.rate))) > _CONTIGUOUS_NS:
                return True
        return False

    def _take(self, max_samples: int) -> tuple[np.ndarray, int]:
        parts: list[np.ndarray] = []
        t_first = self._blocks[0][1]
        expect = t_first
        taken = 0
        while self._blocks and taken < max_samples:
            block, t_ns = self._blocks[0]
            if parts and abs(t_ns - expect) > _CONTIGUOUS_NS:
                break
            n = min(block.shape[0], max_samples - taken)
            parts.append(block[:n])
            if n == block.shape[0]:
                self._blocks.popleft()
            else:
                self._blocks[0] = (block[n:], t_ns + samples_to_ns(n, self.rate))
            taken += n
            expect = t_ns + samples_to_ns(n, self.rate)
        self._size -= taken
        return np.concatenate(parts), t_first

    def clear(self) -> None:
        with self._cond:
            self._blocks.clear()
            self._size = 0

    @property
    def buffered_samples(self) -> int:
        return self._size

    @property
    def buffered_s(self) -> float:
        return self._size / self.rate
