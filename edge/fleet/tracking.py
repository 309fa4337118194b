"""Thread-free bookkeeping of the bridge: sequence gaps per (source, topic), and the bounded hand-off buffer
between the ZeroMQ reader and the NATS sender."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
POLICY_DROP_OLDEST = "drop-oldest"


@dataclass(frozen=True)
class SeqVerdict:
    """What one observed `seq` meant: `lost` messages missing right before it, `restart` when the publisher
    started again (seq went back), `duplicate` when it is the same seq as the last one."""

    lost: int = 0
    restart: bool = False
    duplicate: bool = False


class SeqTracker:
    """Counts gaps in `seq` per key (source, topic). The first seq seen of a key starts it: what came before is
    not ours to count, unless a previous run stored a last seq (`resume`). A seq lower than the next expected
    one is a publisher restart, not a loss."""

    def __init__(self) -> None:
        self._next: dict[tuple[str, str], int] = {}
        self.lost = 0
        self.restarts = 0
        self.duplicates = 0

    def resume(self, key: tuple[str, str], last_seq: int) -> None:
        """Continue counting from `last_seq` (the last one stored by an earlier run), if the key is new."""
        self._next.setdefault(key, last_seq + 1)

    def known(self, key: tuple[str, str]) -> bool:
        return key in self._next

    def observe(self, key: tuple[str, str], seq: int) -> SeqVerdict:
        expected = self._next.get(key)
        self._next[key] = seq + 1
        if expected is None or seq == expected:
            return SeqVerdict()
        if seq > expected:
            self.lost += seq - expected
            return SeqVerdict(lost=seq - expected)
        if seq == expected - 1:
            self.duplicates += 1
            return SeqVerdict(duplicate=True)
        self.restarts += 1
        return SeqVerdict(restart=True)


class BoundedBuffer(Generic[T]):
    """A FIFO of at most `capacity` items, thread-safe; full, it drops the OLDEST item to take the new one
    (the freshest estimates matter most, and what is kept stays in order), counting each drop in `dropped`."""

    policy = POLICY_DROP_OLDEST

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"buffer capacity {capacity}: give at least 1 message")
        self.capacity = capacity
        self.dropped = 0
        self._items: deque[T] = deque()
        self._lock = threading.Lock()

    def push(self, item: T) -> bool:
        """Append `item`; True if an older item was dropped to make room."""
        with self._lock:
            dropped = len(self._items) >= self.capacity
            if dropped:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            return dropped

    def push_front(self, items: list[T]) -> int:
        """Put back `items` (taken with `take`, not sent) at the head, oldest first; what does not fit is
        dropped from the tail's opposite end, i.e. the oldest of all go. Returns how many were dropped."""
        with self._lock:
            self._items.extendleft(reversed(items))
            over = max(0, len(self._items) - self.capacity)
            for _ in range(over):
                self._items.popleft()
            self.dropped += over
            return over

    def take(self, limit: int) -> list[T]:
        """Remove and return up to `limit` items, oldest first."""
        with self._lock:
            n = min(limit, len(self._items))
            return [self._items.popleft() for _ in range(n)]

    def peek(self) -> T | None:
        """The oldest item, left in place (None when empty)."""
        with self._lock:
            return self._items[0] if self._items else None

    def __len__(self) -> int:
        return len(self._items)
