"""The ZeroMQ publisher: multipart `[topic, JSON]`, never blocking, gap-free sequence numbers, counted drops.

Why an XPUB socket with XPUB_NODROP rather than a plain PUB: a PUB socket drops silently, per subscriber, when that
subscriber's queue is full, so the publisher could neither count drops nor keep sequence numbers meaningful. With
NODROP, a non-blocking send into a full queue fails with EAGAIN instead: the message is dropped for everyone,
counted, and does not use up a sequence number, so every subscriber sees the same gap-free stream and health tells
how many were lost. The price is that one stalled subscriber holds back all of them; ZMTP heartbeats bound that:
a subscriber that stops reading stops answering pings and is disconnected after about heartbeat_ivl_ms +
heartbeat_timeout_ms (it reconnects by itself and gets fresh data). XPUB also reports subscriptions, which
`wait_for_subscribers` uses against ZeroMQ's slow-joiner effect.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from types import TracebackType
from typing import Any, Self

import zmq

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
        try:
            self._configure_socket()
            self.endpoint = self._bind()
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

    def publish(self, message: Message) -> int | None:
        """Send one message without blocking; returns its sequence number on its topic, or None when it was
        dropped because a subscriber's queue is full (counted in `stats().dropped`; the number is not used up).

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
                sent = self._send(topic, _encode(payload))
            except zmq.ZMQError as exc:
                raise PublishError(
                    f"sending on {self.endpoint} failed: {exc}; restart the publisher"
                ) from exc
            if sent:
                self._next_seq[message.topic] = seq + 1
            else:
                self._dropped[message.topic] += 1
                self._warn_drops()
            self._drain_subscriptions()
        return seq if sent else None

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
        """True if queued for every subscriber; False (nothing sent) if any subscriber's queue is full."""
        try:
            self._socket.send_multipart([topic, data], flags=zmq.NOBLOCK)
            return True
        except zmq.Again:
            if self.config.block_ms <= 0 or not self._socket.poll(self.config.block_ms, zmq.POLLOUT):
                return False
        try:  # writable again within block_ms (fast replay): send what was waiting
            self._socket.send_multipart([topic, data], flags=zmq.NOBLOCK)
            return True
        except zmq.Again:
            return False

    def _warn_drops(self) -> None:
        now = time.monotonic()
        if now - self._last_drop_warning >= DROP_WARN_INTERVAL_S:
            self._last_drop_warning = now
            log.warning(
                "a subscriber is not keeping up: it misses messages (%d dropped so far, counted in health)",
                sum(self._dropped.values()),
            )

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
        """Per-topic messages published and, of those, missed by at least one (slow) subscriber."""
        with self._lock:
            return PublishStats(
                published={t: self._next_seq[t] for t in TOPICS},
                dropped={t: self._dropped[t] for t in TOPICS},
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
