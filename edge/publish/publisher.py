"""The ZeroMQ publisher: multipart `[topic, JSON]`, never blocking, gap-free sequence numbers, counted overflows.

A slow subscriber must never stall inference or the other subscribers, and the publisher must know when one falls
behind. A plain PUB socket gives the first and hides the second (it drops silently, per subscriber). So the socket
is an XPUB with XPUB_NODROP set: a non-blocking send into a subscriber queue that is full fails with EAGAIN, which
is how an overflow is detected; the same message is then sent again with NODROP off for that one send, so that
every subscriber with room gets it and only the full one misses it. The overflow is counted in `stats().dropped`.
ZeroMQ then skips that subscriber's queue until it has drained to its low-water mark; the messages it misses
meanwhile are not visible to the publisher, but every message uses up a sequence number, so that subscriber sees
exactly what it lost as a gap in `seq`, while everyone who keeps up sees a gap-free stream. ZMTP heartbeats also
disconnect a subscriber that stops answering (a dead peer, a frozen process) after about heartbeat_ivl_ms +
heartbeat_timeout_ms; it reconnects by itself and gets fresh data. XPUB also reports subscriptions, which
`wait_for_subscribers` uses against ZeroMQ's slow-joiner effect.

Why not keep NODROP's "drop for everyone" (the previous design): one subscriber that never reads then made every
other subscriber lose messages until a heartbeat cut it off (about 3 s per stall, repeated after each reconnect).

One thread owns the socket (`publisher-socket`). `publish()` numbers, encodes and queues a message in a bounded
outbox and returns; the socket thread sends what is queued, then reads the subscription notices and the socket
monitor for `edge.publish.guard` (what a peer may send, and disconnecting the ones that break the rules), and
shuts the port's door while too many connections are open (`edge.publish.door`). Why a
thread of its own: ZeroMQ takes in every waiting subscription of every peer whenever its socket is touched, and a
flood of long random prefixes makes one such call take a second or more (issue 20). With the socket behind a
queue, that costs the stream latency, never the caller: the pipeline's main loop never waits on the socket, so
`--duration` and signals end the process on time whatever the peers do. A full outbox (the socket thread held up
for longer than the outbox covers) drops the new message for everyone; it is counted in `stats().dropped` and
shows as a gap in `seq`. A full subscriber queue in live mode gets a little time to drain (the drain budget,
`_send`): a burst after a stall can outrun `send_hwm` while the subscriber is keeping up."""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from collections import Counter, deque
from types import TracebackType
from typing import Any, Self

import zmq

from edge.publish import xpub
from edge.publish.config import PublisherConfig, exposure_warning
from edge.publish.door import Door
from edge.publish.errors import MessageError, PublishError
from edge.publish.guard import SubscriberGuard, local_address, source_fd
from edge.publish.messages import PublishStats
from edge.publish.schema import validate
from edge.publish.wire import SCHEMA_VERSION, TOPICS, Message, WallClock, inert_json
from edge.publish.xpub import bind_xpub, configure_xpub, drain_pipe, lower_thread_priority

log = logging.getLogger(__name__)
DROP_WARN_INTERVAL_S = 10.0
OUTBOX_LIVE = 256  # messages queued for the socket thread (live: minutes of health and windows)
OUTBOX_FAST = 8  # fast replay: publish() waits for room, as it waited for a slow subscriber before
GUARD_BATCH = 64  # notices or monitor events read between two looks at the outbox
MONITOR_CATCH_UP = 1024  # most monitor events read before a batch of notices is judged
IDLE_S = 0.05  # longest sleep of the socket thread (ZeroMQ's FD is edge-triggered: look again this often)
DRAIN_POLL_S = 0.002  # how often a full subscriber queue is looked at again while it may drain
DRAIN_BUDGET_PER_S = 0.05  # live: seconds per second the socket thread may wait for a full queue to drain
DRAIN_BUDGET_MAX_S = 0.2  # live: the most it may save up (one burst after a stall)
JOIN_S = 0.1  # how long close() waits for the socket thread beyond linger_ms (it may be inside ZeroMQ)
SOCKET_THREAD_NICE = 10  # added to the socket thread's nice value (edge.publish.xpub.lower_thread_priority)


class Publisher:
    """Binds on construction; `publish()` is thread-safe and never blocks (fast replay: it waits for room up to
    block_ms); `close()` (or `with`) flushes the outbox and releases the port."""

    def __init__(self, config: PublisherConfig | None = None) -> None:
        self.config = config or PublisherConfig()
        self._state = threading.Condition()  # counters, outbox, closed, the socket thread's error
        self._next_seq: Counter[str] = Counter()
        self._dropped: Counter[str] = Counter()
        self._outbox: deque[tuple[str, bytes, bytes]] = deque()
        self._capacity = OUTBOX_FAST if self.config.block_ms > 0 else OUTBOX_LIVE
        self._error: str | None = None
        self._inproc_subscribes = 0  # inproc endpoints have no descriptors and no guard
        self._last_drop_warning = float("-inf")
        self._in_flight = 0  # messages taken from the outbox and not yet handed to ZeroMQ
        self._drain_budget_s = DRAIN_BUDGET_MAX_S  # only the socket thread touches these two
        self._drain_refilled = time.monotonic()
        self._closed = False
        # A context of our own: the ZAP authenticator is per context, and close() can then terminate everything.
        self._context = zmq.Context()
        self._auth = None
        self._socket = self._context.socket(zmq.XPUB)
        self._monitor: zmq.Socket | None = None
        self._guard: SubscriberGuard | None = None
        self._door: Door | None = None  # shuts the port while it is crowded (edge.publish.door)
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        try:
            self._auth = configure_xpub(self._socket, self._context, self.config)
            self.endpoint = bind_xpub(self._socket, self.config)
            self._monitor = self._socket.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
            local = local_address(self.endpoint)
            self._guard = SubscriberGuard(self.config.limits, local) if local is not None else None
            self._door = Door.for_endpoint(local, self.config.limits)
            self._thread = threading.Thread(target=self._run, name="publisher-socket", daemon=True)
            self._thread.start()  # from here on only that thread touches the socket and the monitor
        except BaseException:
            self._teardown(linger_ms=0)
            raise
        self._warn_if_exposed()
        log.info(
            "publishing on %s (send_hwm=%d, curve=%s)",
            self.endpoint,
            self.config.send_hwm,
            self.config.curve_enabled,
        )

    def _warn_if_exposed(self) -> None:
        warning = exposure_warning(self.config)
        if warning is not None:
            log.warning("%s", warning)

    # ------------------------------------------------------------------------------------------ the callers' side
    def publish(self, message: Message) -> int:
        """Queue one message for sending and return its sequence number on its topic. Every message uses up
        a number: a subscriber whose queue is full misses it (counted in `stats().dropped`, seen by that
        subscriber as a gap in `seq`); the others get it.

        Raises MessageError/SchemaValidationError for a malformed message (no sequence number is used) and
        PublishError once closed or once the socket has failed."""
        payload = self._envelope(message)
        if self.config.validate_messages:
            # seq is still a placeholder: validity does not depend on its value, and a rejected message
            # must not use up a sequence number.
            validate(message.topic, payload)
        topic = message.topic
        with self._state:
            self._check_open()
            seq = self._next_seq[topic]
            payload["seq"] = seq
            data = _encode(payload)  # raises before the number is used
            self._next_seq[topic] = seq + 1
            if len(self._outbox) >= self._capacity and self.config.block_ms > 0:
                self._state.wait_for(lambda: len(self._outbox) < self._capacity or self._closed,
                                     self.config.block_ms / 1000 + 1.0)
            if len(self._outbox) >= self._capacity:  # the socket thread is held up: nobody gets this one
                self._dropped[topic] += 1
                self._warn_drops()
                return seq
            self._outbox.append((topic, topic.encode("ascii"), data))
        self._wake()
        return seq

    def _check_open(self) -> None:
        if self._closed:
            raise PublishError("publisher is closed: create a new Publisher to publish again")
        if self._error is not None:
            raise PublishError(f"sending on {self.endpoint} failed: {self._error}; restart the publisher")

    @staticmethod
    def _envelope(message: Message) -> dict[str, Any]:
        sent = WallClock.now().timepoint(time.monotonic_ns())
        return {
            "schema_version": SCHEMA_VERSION,
            "topic": message.topic,
            "seq": 0,
            "sent": sent,
            **message.body,
        }

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):  # already awake (the pipe is full) or closed
            pass

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until everything published so far has been handed to ZeroMQ (the outbox is empty): a subscriber
        that connects after this does not get those messages. True if it emptied within `timeout_s`."""
        with self._state:
            self._check_open()
            def handed() -> bool:
                return not self._outbox and not self._in_flight

            return self._state.wait_for(lambda: handed() or self._closed or self._error is not None,
                                        timeout_s) and handed()

    def wait_for_subscribers(self, count: int = 1, timeout_s: float = 5.0) -> bool:
        """Wait until `count` subscriptions (one per subscriber and topic prefix) have reached the publisher since
        it started; a connecting subscriber misses what is published before its subscription arrives (ZeroMQ's
        slow joiner). True if they did within `timeout_s`."""
        with self._state:
            if self._closed:
                raise PublishError("publisher is closed: create a new Publisher")
            return self._state.wait_for(lambda: self._subscribes >= count or self._closed, timeout_s) and not (
                self._closed and self._subscribes < count)

    @property
    def _subscribes(self) -> int:
        return self._guard.subscriptions if self._guard is not None else self._inproc_subscribes

    def stats(self) -> PublishStats:
        """Per-topic messages published (= the next seq) and, of those, how many did not reach a subscriber whose
        queue was full (or anyone, when the outbox was full); subscriber connections open now and closed since
        start, and peers refused for breaking a rule."""
        with self._state:
            guard = self._guard
            return PublishStats(
                published={t: self._next_seq[t] for t in TOPICS},
                dropped={t: self._dropped[t] for t in TOPICS},
                connected=guard.connected if guard else 0,
                disconnected=max(0, guard.closed_total - guard.refused) if guard else 0,
                refused=dict(guard.refused_by) if guard else {},
                subscribers=guard.subscribers if guard else 0,
                max_subscribers=self.config.limits.max_subscribers,
                max_connections=self.config.limits.max_connections,
                accept_pauses=self._door.shut_count if self._door is not None else 0,
                pause_accepts_at=self._door.close_above if self._door is not None else 0,
            )

    def _warn_drops(self) -> None:
        now = time.monotonic()
        if now - self._last_drop_warning >= DROP_WARN_INTERVAL_S:
            self._last_drop_warning = now
            log.warning(
                "a subscriber is not keeping up: it misses messages (%d overflows so far, counted in health; "
                "the others are not affected)",
                sum(self._dropped.values()),
            )

    # ------------------------------------------------------------------------------------------ the socket thread
    def _run(self) -> None:
        """Send what is queued, read notices and monitor events, sleep until there is more (module docstring)."""
        lower_thread_priority(SOCKET_THREAD_NICE)
        waiter = select.poll()  # (not select.select: no limit on descriptor numbers)
        for fd in (self._socket.fileno(), self._wake_r,
                   *([self._monitor.fileno()] if self._monitor is not None else [])):
            waiter.register(fd, select.POLLIN)
        try:
            while True:
                with self._state:
                    batch = list(self._outbox)
                    self._outbox.clear()
                    self._in_flight = len(batch)
                    stopping = self._closed
                    self._state.notify_all()  # publish() waiting for room (fast replay)
                for topic, frame, data in batch:
                    if not self._send(frame, data):
                        with self._state:
                            self._dropped[topic] += 1
                            self._warn_drops()
                if batch:
                    with self._state:
                        self._in_flight = 0
                        self._state.notify_all()  # flush()
                if stopping:
                    return
                busy = self._drain_events() | self._drain_subscriptions()
                self._enforce_cap()
                if not busy:
                    waiter.poll(IDLE_S * 1000)
                    drain_pipe(self._wake_r)
        except (zmq.ZMQError, OSError, ValueError) as exc:
            with self._state:
                self._error = str(exc)
                self._state.notify_all()
            log.error("the publishing socket failed: %s; publish() will raise", exc)

    def _send(self, topic: bytes, data: bytes) -> bool:
        """Queue the message for every subscriber with room. True if all had room; False if one was full: it
        misses this message, the others get it."""
        frames = [topic, data]
        # process the socket's pending commands first: a subscriber's "I have read up to here" (activate_write)
        # must reach its pipe, or a pipe that has room looks full and that subscriber misses the message
        self._socket.getsockopt(zmq.EVENTS)
        if self._try_send(frames):
            return True
        # A full queue: give it time to drain. Fast replay waits up to block_ms (no clock is waiting). Live waits
        # on the drain budget: a burst (the windows that fell due while the process was held up) can outrun a
        # subscriber's send_hwm before ZeroMQ's I/O thread has moved the queue to the kernel; that subscriber is
        # keeping up and must not lose a message. One that is stuck uses the budget up and then costs the others
        # at most DRAIN_BUDGET_PER_S of delay per second. (poll(POLLOUT) cannot tell: XPUB is always writable.)
        live = self.config.block_ms == 0
        now = time.monotonic()
        if live:
            self._drain_budget_s = min(DRAIN_BUDGET_MAX_S,
                                       self._drain_budget_s + (now - self._drain_refilled) * DRAIN_BUDGET_PER_S)
            self._drain_refilled = now
        deadline = now + (self._drain_budget_s if live else self.config.block_ms / 1000)
        sent = False
        while not sent and time.monotonic() < deadline:
            time.sleep(DRAIN_POLL_S)
            self._socket.getsockopt(zmq.EVENTS)
            sent = self._try_send(frames)
        if live:
            self._drain_budget_s = max(0.0, self._drain_budget_s - (time.monotonic() - now))
        if sent:
            return True
        self._socket.setsockopt(zmq.XPUB_NODROP, 0)
        try:  # lossy for this one send: ZeroMQ skips the full queue(s) and delivers to the rest
            self._socket.send_multipart(frames, flags=zmq.NOBLOCK)
        finally:
            self._socket.setsockopt(zmq.XPUB_NODROP, 1)
        return False

    def _try_send(self, frames: list[bytes]) -> bool:
        try:
            self._socket.send_multipart(frames, flags=zmq.NOBLOCK)
            return True
        except zmq.Again:
            return False

    def _drain_events(self, limit: int = GUARD_BATCH) -> bool:
        """Follow connections from the socket monitor (inproc, never blocks). True if `limit` events were read
        (there may be more)."""
        events = xpub.read_events(self._monitor, limit) if self._monitor is not None else []
        if self._guard is not None and events:
            with self._state:
                for event, fd in events:
                    if event == zmq.EVENT_ACCEPTED:
                        self._guard.accepted(fd)
                    else:
                        self._guard.closed(fd)
            if self._door is not None:  # after each batch: a burst of accepts shuts it as soon as it is seen
                self._door.follow(self._guard.connected)
        return len(events) == limit

    def _enforce_cap(self) -> None:
        """The connection cap (rule 4 of edge.publish.guard), then the port's door: every turn of the loop, after
        the notices that have arrived are judged, and also when idle (a shut door times out)."""
        if self._guard is None:
            return
        with self._state:
            self._guard.enforce()
        if self._door is not None:
            self._door.follow(self._guard.connected)

    def _drain_subscriptions(self) -> bool:
        """Read and judge (un)subscription notices; unread, they would pile up inside the socket. True if a full
        batch was read. (recv without a poll before it: a poll makes ZeroMQ take in every waiting subscription
        of every peer each time; recv does that only every 100 calls or when nothing is left.)"""
        notices: list[tuple[int | None, bytes]] = []
        for _ in range(GUARD_BATCH):
            try:
                notice = self._socket.recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            data = notice.bytes
            subscribe = data[:1] == b"\x01"
            notices.append((source_fd(notice) if subscribe and self._guard is not None else None, data))
        if notices and self._guard is not None:
            # the monitor's events first: ZeroMQ reports a connection closed before its descriptor can be
            # reused, so a newcomer on a reused descriptor is judged as itself, not as the one cut before it
            # (the connection cap cuts often: without this a subscriber could be taken for a silent one)
            self._drain_events(MONITOR_CATCH_UP)
        with self._state:
            for fd, data in notices:
                if self._guard is not None:
                    self._guard.subscription(fd, data)
                elif data[:1] == b"\x01":
                    self._inproc_subscribes += 1
            self._state.notify_all()  # wait_for_subscribers
        return len(notices) == GUARD_BATCH

    # ------------------------------------------------------------------------------------------ closing
    def close(self) -> None:
        """Send what is queued, then unbind and release everything; idempotent. Messages still in ZeroMQ's queues
        are discarded unless linger_ms > 0."""
        with self._state:
            if self._closed:
                return
            self._closed = True
            self._state.notify_all()
        self._wake()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.config.linger_ms / 1000 + JOIN_S)
            if thread.is_alive():  # held up inside ZeroMQ: never close a socket another thread is using
                log.warning("publisher on %s: the socket thread did not stop; leaving the socket to the OS",
                            self.endpoint)
                return
        self._teardown(self.config.linger_ms)
        log.info("publisher on %s closed", getattr(self, "endpoint", self.config.endpoint))

    def _teardown(self, linger_ms: int) -> None:
        if self._monitor is not None:
            xpub.close_monitor(self._monitor)
            self._monitor = None
        self._socket.close(linger=linger_ms)
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        self._context.destroy(linger=0)  # closes anything left, so term() cannot wait forever
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _encode(payload: dict[str, Any]) -> bytes:
    """Printable-ASCII JSON (`inert_json`); NaN/Inf are refused (the constructors already replaced them)."""
    try:
        return inert_json(payload).encode("ascii")
    except (TypeError, ValueError) as exc:
        raise MessageError(
            f"message cannot be encoded as JSON ({exc}): build it with the edge.publish constructors"
        ) from None
