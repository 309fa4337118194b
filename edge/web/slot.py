"""One viewer's outbox: a few pending updates, and past that, the newest state instead (latest wins).

A browser that reads slower than updates arrive never builds a queue on the server. Updates wait in the slot
while the viewer's previous send is in progress (a handful arrive together when the stream delivers a burst);
when `capacity` of them are waiting, they are all dropped (counted) and the viewer is owed a resync: the
next thing it is sent is the whole page state as it is at that moment, so it gets the newest state, with
nothing missing and nothing stale. Updates offered while a resync is owed are counted as dropped too (the
resync will contain them). Thread-free; the server wakes the sender with an event of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
DEFAULT_CAPACITY = 16  # updates: ~8 s of stream at its usual ~2 messages a second, a burst well past that


@dataclass(frozen=True)
class Taken(Generic[T]):
    """What the sender takes: the updates to send in order, or (resync) none: send the whole state."""

    items: tuple[T, ...]
    resync: bool


class LatestSlot(Generic[T]):
    """`offer(item)` (producer) and `take()` (sender); `dropped` counts updates replaced by a resync."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity={capacity}: a slot holds at least one update")
        self.capacity = capacity
        self._items: list[T] = []
        self._resync = False
        self.offered = 0
        self.dropped = 0

    def offer(self, item: T, *, replaces: Callable[[T], bool] | None = None) -> None:
        """Add `item`; with `replaces`, a pending item it matches is dropped (counted) first, so of updates that
        supersede each other (camera frames) a viewer only ever has the newest waiting."""
        self.offered += 1
        if replaces is not None and not self._resync:
            kept = [pending for pending in self._items if not replaces(pending)]
            self.dropped += len(self._items) - len(kept)
            self._items = kept
        if self._resync:
            self.dropped += 1
        elif len(self._items) >= self.capacity:
            self.dropped += len(self._items) + 1
            self._items.clear()
            self._resync = True
        else:
            self._items.append(item)

    def take(self) -> Taken[T] | None:
        """The pending updates (or a resync owed); None when there is nothing to send."""
        if not self.pending:
            return None
        taken = Taken(tuple(self._items), self._resync)
        self._items, self._resync = [], False
        return taken

    @property
    def pending(self) -> bool:
        return self._resync or bool(self._items)
