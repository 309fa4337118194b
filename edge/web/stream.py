"""The node's ZeroMQ stream, read on a thread of its own and handed to the server's event loop.

The hand-off is a bounded inbox (drop-oldest, counted): if the loop stalls, the thread never blocks and memory
never grows. `on_ready` is called (from the reading thread) when the inbox goes from empty to non-empty; the
server passes a `call_soon_threadsafe` wrapper, so the loop is woken once per batch, not once per message.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from edge.publish.errors import MessageError, PublishError
from edge.publish.subscriber import Subscriber, SubscriberConfig

log = logging.getLogger(__name__)
POLL_S = 0.1  # how often the reading thread looks at its stop flag


class Inbox:
    """The bounded hand-off to the loop (drop-oldest, counted); `on_ready` when it goes from empty to
    non-empty. Thread-safe: the ZeroMQ reader fills it from its thread, the NATS reader from the loop."""

    def __init__(self, capacity: int, on_ready: Callable[[], None]) -> None:
        self._items: deque[tuple[str, dict[str, Any]]] = deque()
        self._capacity = capacity
        self._on_ready = on_ready
        self._lock = threading.Lock()
        self.received = 0
        self.dropped = 0  # messages let go (oldest first) because the loop did not take them

    def put(self, topic: str, payload: dict[str, Any]) -> None:
        with self._lock:
            self.received += 1
            was_empty = not self._items
            if len(self._items) >= self._capacity:
                self._items.popleft()
                self.dropped += 1
            self._items.append((topic, payload))
        if was_empty:
            self._on_ready()

    def drain(self) -> list[tuple[str, dict[str, Any]]]:
        """Every message waiting, oldest first (the inbox is then empty)."""
        with self._lock:
            out = list(self._items)
            self._items.clear()
        return out


class StreamReader:
    """A `Subscriber` on a thread: `start()`, `drain()` from the loop, `stop()` + `join(timeout)`.
    Connecting happens in the constructor, so a bad endpoint or CURVE key fails before anything is served."""

    def __init__(self, config: SubscriberConfig, on_ready: Callable[[], None], capacity: int = 256) -> None:
        self._subscriber = Subscriber(config)
        self._inbox = Inbox(capacity, on_ready)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="qamoe-web-stream", daemon=True)
        self.undecodable = 0

    @property
    def received(self) -> int:
        return self._inbox.received

    @property
    def dropped(self) -> int:
        return self._inbox.dropped

    @property
    def endpoint(self) -> str:
        return self._subscriber.config.endpoint

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    got = self._subscriber.receive(POLL_S)
                except MessageError as exc:
                    self.undecodable += 1
                    log.debug("undecodable message: %s", exc)
                    continue
                if got is not None:
                    self._inbox.put(got.topic, got.payload)
        except PublishError:
            log.exception("reading the stream from %s failed; the page stops updating", self.endpoint)
        finally:
            self._subscriber.close()

    def drain(self) -> list[tuple[str, dict[str, Any]]]:
        return self._inbox.drain()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout_s: float = 2.0) -> bool:
        """Wait for the thread to end (it closes the socket); False if it is still running."""
        if self._thread.ident is None:  # never started: the socket is this thread's to close
            self._subscriber.close()
        elif self._thread.is_alive():
            self._thread.join(timeout_s)
        return not self._thread.is_alive()
