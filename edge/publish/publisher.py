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
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from types import TracebackType
from typing import Any, Self

import zmq
from zmq.utils.monitor import recv_monitor_message

from edge.publish import curve
from edge.publish.config import PublisherConfig, exposure_warning
from edge.publish.errors import MessageError, PortInUseError, PublishError
from edge.publish.messages import PublishStats
from edge.publish.schema import validate
from edge.publish.wire import SCHEMA_VERSION, TOPICS, Message, WallClock, inert_json

log = logging.getLogger(__name__)
DROP_WARN_INTERVAL_S = 10.0


class Publisher:
    """Binds on construction; `publish()` is thread-safe and never blocks; `close()` (or `with`) releases the port."""

    def __init__(self, config: PublisherConfig | None = None) -> None:
        self.config = config or PublisherConfig()
        self._lock = threading.Lock()
        self._next_seq: Counter[str] = Counter()
        self._dropped: Counter[str] = Counter()
        self._subscribes = 0
        self._last_drop_warning = float("-inf")
        self._closed = False
        # A context of our own: the ZAP authenticator is per context, and close() can then terminate everything.
        self._context = zmq.Context()
        self._auth = None
        self._socket = self._context.socket(zmq.XPUB)
        self._monitor: zmq.Socket | None = None
        self._peers = Counter[str]()  # connections accepted / closed (cut off by heartbeats, crashed or left)
        try:
            self._configure_socket()
            self.endpoint = self._bind()
            self._monitor = self._socket.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
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

    def _configure_socket(self) -> None:
        cfg = self.config
        sock = self._socket
        sock.setsockopt(zmq.SNDHWM, cfg.send_hwm)
        sock.setsockopt(zmq.LINGER, cfg.linger_ms)
        sock.setsockopt(zmq.XPUB_NODROP, 1)
        sock.setsockopt(zmq.XPUB_VERBOSE, 1)  # report every subscriber's subscription, not just the first
        if cfg.heartbeat_ivl_ms:
            sock.setsockopt(zmq.HEARTBEAT_IVL, cfg.heartbeat_ivl_ms)
            sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, cfg.heartbeat_timeout_ms)
        if cfg.parsed_endpoint.is_ipv6:
            sock.setsockopt(zmq.IPV6, 1)
        if cfg.curve_server_secret_key_file is not None and cfg.curve_allowed_clients_dir is not None:
            self._auth = curve.start_authenticator(self._context, cfg.curve_allowed_clients_dir)
            curve.make_server(sock, cfg.curve_server_secret_key_file)

    def _bind(self) -> str:
        ep = self.config.parsed_endpoint
        try:
            self._socket.bind(ep.url)
        except zmq.ZMQError as exc:
            if exc.errno == zmq.EADDRINUSE:
                raise PortInUseError(ep.url, ep.port) from exc
            raise PublishError(
                f"cannot bind {ep.url}: {exc.strerror}; use an address of this machine, e.g. tcp://127.0.0.1:5556"
            ) from exc
        return self._socket.getsockopt_string(zmq.LAST_ENDPOINT)

    def _warn_if_exposed(self) -> None:
        warning = exposure_warning(self.config)
        if warning is not None:
            log.warning("%s", warning)

    def publish(self, message: Message) -> int:
        """Send one message without blocking and return its sequence number on its topic. Every message uses up
        a number: a subscriber whose queue is full misses it (counted in `stats().dropped`, seen by that
        subscriber as a gap in `seq`); the others get it.

        Raises MessageError/SchemaValidationError for a malformed message (no sequence number is used) and
        PublishError once closed."""
        payload = self._envelope(message)
        if self.config.validate_messages:
            # seq is still a placeholder: validity does not depend on its value, and a rejected message
            # must not use up a sequence number.
            validate(message.topic, payload)
        topic = message.topic.encode("ascii")
        with self._lock:
            if self._closed:
                raise PublishError("publisher is closed: create a new Publisher to publish again")
            seq = self._next_seq[message.topic]
            payload["seq"] = seq
            try:
                if not self._send(topic, _encode(payload)):
                    self._dropped[message.topic] += 1
                    self._warn_drops()
            except zmq.ZMQError as exc:
                raise PublishError(
                    f"sending on {self.endpoint} failed: {exc}; restart the publisher"
                ) from exc
            self._next_seq[message.topic] = seq + 1
            self._drain_subscriptions()
        return seq

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

    def _send(self, topic: bytes, data: bytes) -> bool:
        """Queue the message for every subscriber with room. True if all had room; False if one was full: it
        misses this message, the others get it."""
        frames = [topic, data]
        if self._try_send(frames):
            return True
        if self.config.block_ms > 0:  # fast replay: no clock is waiting, give the subscriber time to catch up
            # (poll(POLLOUT) cannot tell: an XPUB socket always reports itself writable)
            deadline = time.monotonic() + self.config.block_ms / 1000
            while time.monotonic() < deadline:
                time.sleep(0.002)
                if self._try_send(frames):
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

    def _warn_drops(self) -> None:
        now = time.monotonic()
        if now - self._last_drop_warning >= DROP_WARN_INTERVAL_S:
            self._last_drop_warning = now
            log.warning(
                "a subscriber is not keeping up: it misses messages (%d overflows so far, counted in health; "
                "the others are not affected)",
                sum(self._dropped.values()),
            )

    def _drain_events(self) -> None:
        """Count connections from the socket monitor (inproc, never blocks)."""
        while self._monitor is not None and self._monitor.poll(0):
            event = recv_monitor_message(self._monitor)["event"]
            self._peers["accepted" if event == zmq.EVENT_ACCEPTED else "closed"] += 1

    def _drain_subscriptions(self) -> None:
        """Read (un)subscription notices; unread, they would pile up inside the socket."""
        while self._socket.poll(0, zmq.POLLIN):
            notice = self._socket.recv()
            if notice[:1] == b"\x01":
                self._subscribes += 1
            log.debug("subscription notice %r", notice[:64])

    def wait_for_subscribers(self, count: int = 1, timeout_s: float = 5.0) -> bool:
        """Wait until `count` subscriptions (one per subscriber and topic prefix) have reached the publisher since
        it started; a connecting subscriber misses what is published before its subscription arrives (ZeroMQ's
        slow joiner). True if they did within `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                if self._closed:
                    raise PublishError("publisher is closed: create a new Publisher")
                self._drain_subscriptions()
                if self._subscribes >= count:
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)

    def stats(self) -> PublishStats:
        """Per-topic messages published (= the next seq) and, of those, how many a subscriber's full queue refused;
        subscribers connected now and connections closed since start."""
        with self._lock:
            if not self._closed:
                self._drain_events()
            return PublishStats(
                published={t: self._next_seq[t] for t in TOPICS},
                dropped={t: self._dropped[t] for t in TOPICS},
                connected=max(0, self._peers["accepted"] - self._peers["closed"]),
                disconnected=self._peers["closed"],
            )

    def close(self) -> None:
        """Unbind and release everything; idempotent. Unsent messages are discarded unless linger_ms > 0."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._teardown(self.config.linger_ms)
        log.info("publisher on %s closed", getattr(self, "endpoint", self.config.endpoint))

    def _teardown(self, linger_ms: int) -> None:
        if self._monitor is not None:
            self._socket.disable_monitor()
            self._monitor.close(linger=0)
            self._monitor = None
        self._socket.close(linger=linger_ms)
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        self._context.destroy(linger=0)  # closes anything left, so term() cannot wait forever

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
