"""Feeding a `JsonlRecordWriter` from a ZeroMQ `Subscriber`: the loop `qamoe-record` runs, and the same loop on
a thread (`BackgroundRecording`) for `qamoe-plot --replay` and the tests.

Every message is stamped with the wall and monotonic clocks the moment it is taken off the socket. A message
that is not `[topic, JSON object]` is counted and logged, not recorded (it has no payload to keep).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from edge.publish import MessageError, Subscriber, SubscriberConfig
from edge.record.config import RecordConfig
from edge.record.errors import RecordConfigError
from edge.record.writer import JsonlRecordWriter

log = logging.getLogger(__name__)
POLL_S = 0.1  # how often the loop looks at its stop flag and deadline
FAST_RECONNECT_MS = 5  # for a recorder started before a --fast replay binds (edge.publish.recorder says why)


@dataclass
class RecordStats:
    received: int = 0
    undecodable: int = 0


def record_stream(
    sub: Subscriber,
    writer: JsonlRecordWriter,
    stop: threading.Event,
    *,
    duration_s: float | None = None,
    stats: RecordStats | None = None,
) -> RecordStats:
    """Write every message `sub` receives until `stop` is set or `duration_s` has passed; returns the counts."""
    if duration_s is not None and not duration_s > 0:
        raise RecordConfigError(f"duration {duration_s}: choose a positive number of seconds")
    stats = stats if stats is not None else RecordStats()
    deadline = None if duration_s is None else time.monotonic() + duration_s
    while not stop.is_set():
        wait = POLL_S if deadline is None else min(POLL_S, deadline - time.monotonic())
        if wait <= 0:
            break
        try:
            got = sub.receive(wait)
        except MessageError as exc:
            stats.undecodable += 1
            log.warning("skipped a message: %s", exc)
            continue
        if got is None:
            continue
        writer.write(
            got.topic, got.payload, received_wall_ns=time.time_ns(), received_mono_ns=time.monotonic_ns()
        )
        stats.received += 1
    return stats


class BackgroundRecording:
    """`record_stream` on a thread: connects and starts on construction, `stop()` ends it and closes the
    files. An error on the thread (a full disk) is raised again by `stop()`."""

    def __init__(self, endpoint: str, config: RecordConfig) -> None:
        self.writer = JsonlRecordWriter(config)
        self.stats = RecordStats()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._sub = Subscriber(SubscriberConfig(endpoint=endpoint, reconnect_ivl_ms=FAST_RECONNECT_MS))
        self._thread = threading.Thread(target=self._run, name="record", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            record_stream(self._sub, self.writer, self._stop, stats=self.stats)
        except Exception as exc:  # noqa: BLE001 - raised again by stop(), in the caller's thread
            log.error("recording stopped: %s", exc)
            self._error = exc

    def stop(self, settle_s: float = 0.5) -> RecordStats:
        """Record `settle_s` more (what is in flight), then stop, close the files and return the counts."""
        time.sleep(settle_s)
        self._stop.set()
        self._thread.join(POLL_S + 5.0)
        self._sub.close()
        self.writer.close()
        if self._error is not None:
            raise self._error
        return self.stats
