"""The pipeline's bounded hand-off between threads: a queue whose put never blocks and whose drops are counted.

Shared by the runtime (events, ASR audio) and the annotated-video writer (frames), so it lives below both."""

from __future__ import annotations

import queue
from typing import Any

from edge.publish.messages import QueueStats


class DropOldestQueue:
    """A bounded queue whose put never blocks: when full, the oldest item is dropped and counted."""

    def __init__(self, name: str, capacity: int) -> None:
        self.name, self.capacity = name, capacity
        self._q: queue.Queue = queue.Queue(maxsize=capacity)
        self.dropped = 0

    def put(self, item: Any) -> None:
        while True:
            try:
                self._q.put_nowait(item)
                return
            except queue.Full:
                try:
                    self._q.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def get(self, timeout_s: float) -> Any | None:
        try:
            return self._q.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def get_nowait(self) -> Any | None:
        """The next item if one is waiting, else None (never blocks)."""
        try:
            return self._q.get_nowait()
        except queue.Empty:
            return None

    def stats(self) -> QueueStats:
        return QueueStats(policy="drop_oldest", depth=self._q.qsize(), capacity=self.capacity, dropped=self.dropped)
