"""A recorder: a `Subscriber` on a thread of its own, keeping every message it receives, in order.

What the tests, the benchmarks and the soak read a live run with: start one before (or while) qamoe-live
publishes, read `messages` or `of(topic_suffix)` while it runs, `stop()` to get the whole record. Messages that
are not `[topic, JSON object]` are counted in `undecodable`, not kept.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

from edge.publish.errors import MessageError
from edge.publish.subscriber import Subscriber, SubscriberConfig

log = logging.getLogger(__name__)
POLL_S = 0.1  # how often the recording thread looks at its stop flag
RETRY_MS = 5  # connection retry while the recorded process has not bound yet


class Recorder:
    """Connects on construction and records (topic, payload) pairs until `stop()`."""

    def __init__(self, endpoint: str, config: SubscriberConfig | None = None) -> None:
        self.endpoint = endpoint
        self.messages: list[tuple[str, dict]] = []  # appended by the recording thread only
        self.arrivals: list[int] = []  # monotonic ns at which each message was received, index for index
        self.undecodable = 0
        self._stop = threading.Event()
        # A recorder usually connects before the process it records has bound its port (it loads its models
        # first), and a --fast replay of a short clip can publish everything within ~100 ms of the bind: retry
        # the connection every 5 ms, not ZeroMQ's 100 ms, so the subscription is in before the first window
        # (a CI run lost every window of a 3 s camera-only replay to the 100 ms retry).
        self._subscriber = Subscriber(config or SubscriberConfig(endpoint=endpoint, reconnect_ivl_ms=RETRY_MS))
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                got = self._subscriber.receive(POLL_S)
            except MessageError as exc:
                self.undecodable += 1
                log.debug("undecodable message: %s", exc)
                continue
            if got is not None:
                self.arrivals.append(time.monotonic_ns())  # first: a reader never sees a message without one
                self.messages.append((got.topic, got.payload))

    def of(self, topic_suffix: str) -> list[dict]:
        """The payloads recorded so far whose topic ends with `topic_suffix` (e.g. "sentiment")."""
        return [body for topic, body in list(self.messages) if topic.endswith(topic_suffix)]

    def stop(self, settle_s: float = 0.5) -> list[tuple[str, dict]]:
        """Keep recording `settle_s` more seconds (what is in flight), then disconnect; returns the record."""
        time.sleep(settle_s)
        self._stop.set()
        self._thread.join(2 * POLL_S + 1.0)
        self._subscriber.close()
        return self.messages


def free_endpoint(host: str = "127.0.0.1") -> str:
    """A loopback TCP endpoint on a port the OS has just handed out (free now; a race with other binders is
    possible but rare, and a taken port fails the bind with exit code 5)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return f"tcp://{host}:{s.getsockname()[1]}"
