"""A small ZeroMQ SUB client for the v1 topics (used by `qamoe-tap`, the examples and the tests)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import zmq

from edge.publish import curve
from edge.publish.config import DEFAULT_ENDPOINT, parse_endpoint
from edge.publish.errors import MessageError, PublishConfigError, PublishError
from edge.publish.wire import TOPIC_PREFIX

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SubscriberConfig:
    """endpoint: where the publisher is bound; topics: prefixes to receive (default: every v1 topic);
    curve_*: the server's public key file and this client's secret key file, both or neither."""

    endpoint: str = DEFAULT_ENDPOINT
    topics: tuple[str, ...] = (TOPIC_PREFIX,)
    receive_hwm: int = 1000
    reconnect_ivl_ms: int = 100  # ZeroMQ's retry interval while the publisher is not (yet) there
    reconnect_ivl_max_ms: int = 0  # > 0: the interval doubles per failed try up to this (capped backoff)
    # A connection whose ZMTP handshake has not finished by then is dropped and tried afresh. A publisher under
    # a reconnect storm keeps newcomers waiting half-open at its port's door (edge.publish.door), and a waiting
    # TCP connection retries ever more rarely (0.2, 0.4, 0.8, 1.6, 3.2 s apart); a fresh one retries at once.
    handshake_ivl_ms: int = 1500
    curve_server_public_key_file: Path | None = None
    curve_client_secret_key_file: Path | None = None

    def __post_init__(self) -> None:
        parse_endpoint(self.endpoint)
        if not self.topics:
            raise PublishConfigError(
                f"no topics to subscribe to: pass at least one, e.g. {TOPIC_PREFIX}sentiment"
            )
        if not 1 <= self.reconnect_ivl_ms <= 60_000:
            raise PublishConfigError(f"reconnect_ivl_ms={self.reconnect_ivl_ms}: choose 1-60000 ms")
        if self.reconnect_ivl_max_ms and not self.reconnect_ivl_ms <= self.reconnect_ivl_max_ms <= 600_000:
            raise PublishConfigError(
                f"reconnect_ivl_max_ms={self.reconnect_ivl_max_ms}: choose 0 (no backoff) or "
                f"reconnect_ivl_ms-600000 ms"
            )
        if not 100 <= self.handshake_ivl_ms <= 600_000:
            raise PublishConfigError(f"handshake_ivl_ms={self.handshake_ivl_ms}: choose 100-600000 ms")
        if self.receive_hwm < 1:
            raise PublishConfigError(f"receive_hwm={self.receive_hwm}: choose at least 1 message")
        if (self.curve_server_public_key_file is None) != (self.curve_client_secret_key_file is None):
            raise PublishConfigError(
                "CURVE needs both the server's public key (--curve-server-key) and this client's key pair "
                "(--curve-client-keys); pass both or neither"
            )


@dataclass(frozen=True)
class Received:
    topic: str
    payload: dict[str, Any]


class Subscriber:
    """Connects on construction; `receive(timeout_s)` returns the next message or None on timeout."""

    def __init__(self, config: SubscriberConfig | None = None) -> None:
        self.config = config or SubscriberConfig()
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.SUB)
        try:
            self._configure()
            self._socket.connect(self.config.endpoint)
        except BaseException:
            self.close()
            raise

    def _configure(self) -> None:
        cfg = self.config
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.RCVHWM, cfg.receive_hwm)
        self._socket.setsockopt(zmq.RECONNECT_IVL, cfg.reconnect_ivl_ms)
        self._socket.setsockopt(zmq.RECONNECT_IVL_MAX, cfg.reconnect_ivl_max_ms)
        self._socket.setsockopt(zmq.HANDSHAKE_IVL, cfg.handshake_ivl_ms)
        if parse_endpoint(cfg.endpoint).is_ipv6:
            self._socket.setsockopt(zmq.IPV6, 1)
        if cfg.curve_server_public_key_file is not None and cfg.curve_client_secret_key_file is not None:
            curve.make_client(
                self._socket, cfg.curve_server_public_key_file, cfg.curve_client_secret_key_file
            )
        for topic in cfg.topics:
            self._socket.setsockopt(zmq.SUBSCRIBE, topic.encode("utf-8"))

    def connect(self, endpoint: str) -> None:
        """Also read the publisher at `endpoint` (same topics and keys); ZeroMQ fair-queues between them."""
        if parse_endpoint(endpoint).is_ipv6:
            self._socket.setsockopt(zmq.IPV6, 1)
        self._socket.connect(endpoint)

    def receive(self, timeout_s: float | None) -> Received | None:
        """The next message (None after `timeout_s` seconds; None timeout waits forever).

        Raises MessageError for a message that is not `[topic, JSON object]` (it is consumed)."""
        got = self.receive_raw(timeout_s)
        return None if got is None else got[0]

    def receive_raw(self, timeout_s: float | None) -> tuple[Received, bytes] | None:
        """As `receive`, with the payload's bytes as they arrived (what a bridge forwards unchanged)."""
        timeout_ms = None if timeout_s is None else max(0, int(timeout_s * 1000))
        if not self._socket.poll(timeout_ms, zmq.POLLIN):
            return None
        try:
            frames = self._socket.recv_multipart(zmq.NOBLOCK)
        except zmq.ZMQError as exc:
            raise PublishError(f"receiving from {self.config.endpoint} failed: {exc}") from exc
        return decode(frames), frames[1]  # decode() has checked there are two

    def close(self) -> None:
        if not self._socket.closed:
            self._socket.close(linger=0)
        if not self._context.closed:
            self._context.term()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def decode(frames: list[bytes]) -> Received:
    """`[topic, JSON object]` frames as a Received; MessageError otherwise."""
    if len(frames) != 2:
        raise MessageError(
            f"expected 2 frames [topic, JSON], got {len(frames)}: is this a qamoe-live publisher?"
        )
    try:
        topic = frames[0].decode("utf-8")
        payload = json.loads(frames[1])
    except (UnicodeDecodeError, ValueError) as exc:
        raise MessageError(f"undecodable message ({exc}): is this a qamoe-live publisher?") from exc
    if not isinstance(payload, dict):
        raise MessageError(f"payload is a JSON {type(payload).__name__}, not an object")
    return Received(topic, payload)
