"""The publisher's subscriber rules (`edge.publish.guard`) on their own, and on a real socket: which prefixes are
honoured, the per-peer and connection caps, the accept rate, and that `disconnect` only ever touches a connection
of the publisher's own port. The hostile processes against the real `qamoe-live` are in
tests/faults/test_hostile_subscribers.py."""

from __future__ import annotations

import json
import os
import socket

import pytest
import zmq

from edge.publish import Publisher, PublisherConfig
from edge.publish.errors import PublishConfigError
from edge.publish.examples import example_health
from edge.publish.guard import (
    BAD_PREFIX,
    TOO_MANY_SUBSCRIBERS,
    TOO_MANY_SUBSCRIPTIONS,
    LocalAddress,
    SubscriberGuard,
    SubscriberLimits,
    disconnect,
    local_address,
    prefix_allowed,
)
from edge.publish.wire import TOPICS
from tests.integration.test_sources_worker import wait_for

ANY_PORT = "tcp://127.0.0.1:0"


@pytest.mark.parametrize("prefix", [b"", b"q", b"qamoe.", b"qamoe.v1.", b"qamoe.v1.sent", *(t.encode() for t in TOPICS),
                                    b"qamoe.v1.future_topic", b"qamoe.v1.a-b.c_d"])
def test_allowed_prefixes(prefix: bytes) -> None:
    assert prefix_allowed(prefix, 64)


@pytest.mark.parametrize("prefix", [b"x", b"qamoe.v2.sentiment", b"qamoe.v1.sentimentX\x00", b"\x01\x02",
                                    b"qamoe.v1." + b"a" * 60, b"qamoe.v1.<script>", b"QAMOE.V1."])
def test_refused_prefixes(prefix: bytes) -> None:
    assert not prefix_allowed(prefix, 64)


class _Peers:
    """Real connected TCP sockets to a real listener: the guard may shut them down."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.pairs: list[tuple[socket.socket, socket.socket]] = []

    def connect(self) -> tuple[int, socket.socket]:
        client = socket.create_connection(("127.0.0.1", self.port))
        server, _ = self.listener.accept()
        self.pairs.append((client, server))
        return server.fileno(), client

    def close(self) -> None:
        for a, b in self.pairs:
            a.close()
            b.close()
        self.listener.close()


@pytest.fixture()
def peers():  # type: ignore[no-untyped-def]
    p = _Peers()
    yield p
    p.close()


def _cut(client: socket.socket) -> bool:
    """True if the server side shut the connection down (the client reads EOF)."""
    client.settimeout(1.0)
    try:
        return client.recv(1) == b""
    except (TimeoutError, OSError):
        return False


def test_a_bad_prefix_disconnects_that_peer_once(peers: _Peers) -> None:
    guard = SubscriberGuard(SubscriberLimits(), LocalAddress("tcp", peers.port))
    good_fd, good = peers.connect()
    bad_fd, bad = peers.connect()
    guard.accepted(good_fd)
    guard.accepted(bad_fd)
    assert guard.subscription(good_fd, b"\x01qamoe.v1.sentiment") is None
    assert guard.subscription(bad_fd, b"\x01" + os.urandom(40)) == BAD_PREFIX
    assert guard.subscription(bad_fd, b"\x01" + os.urandom(40)) is None  # already out: counted once
    assert guard.refused_by == {BAD_PREFIX: 1}
    assert _cut(bad) and not _cut(good)
    assert guard.subscription(None, b"\x00" + os.urandom(40)) is None  # ZeroMQ's own unsubscription notices


def test_subscription_and_subscriber_caps(peers: _Peers) -> None:
    limits = SubscriberLimits(max_subscriptions_per_peer=3, max_subscribers=2)
    guard = SubscriberGuard(limits, LocalAddress("tcp", peers.port))
    fds = [peers.connect() for _ in range(3)]
    for fd, _ in fds:
        guard.accepted(fd)  # nothing is refused at accept time
    assert guard.connected == 3
    assert guard.subscription(fds[0][0], b"\x01qamoe.v1.health") is None
    assert guard.subscription(fds[1][0], b"\x01") is None
    assert guard.subscription(fds[2][0], b"\x01") == TOO_MANY_SUBSCRIBERS and _cut(fds[2][1])
    for _ in range(2):
        assert guard.subscription(fds[0][0], b"\x01qamoe.v1.sentiment") is None
    assert guard.subscription(fds[0][0], b"\x01qamoe.v1.health") == TOO_MANY_SUBSCRIPTIONS and _cut(fds[0][1])
    assert guard.refused == 2 and guard.subscribers == 1
    guard.closed(fds[0][0])
    guard.closed(fds[2][0])
    assert guard.connected == 1 and not _cut(fds[1][1])


def test_notices_and_monitor_events_in_either_order(peers: _Peers) -> None:
    guard = SubscriberGuard(SubscriberLimits(max_subscribers=1), LocalAddress("tcp", peers.port))
    fd, _ = peers.connect()
    assert guard.subscription(fd, b"\x01qamoe.v1.") is None  # before its accept event
    guard.accepted(fd)
    assert guard.subscribers == 1 and guard.connected == 1
    guard.closed(fd)
    assert guard.subscription(fd, b"\x01qamoe.v1.health") is None  # a late notice of a closed connection
    assert guard.subscribers == 0 and guard.connected == 0  # ... leaves no phantom subscriber behind
    fd2, _ = peers.connect()
    guard.accepted(fd2)
    assert guard.subscription(fd2, b"\x01") is None  # the cap of 1 is free again


def test_disconnect_touches_only_connections_of_our_port(peers: _Peers, tmp_path) -> None:  # type: ignore[no-untyped-def]
    fd, client = peers.connect()
    assert not disconnect(fd, LocalAddress("tcp", peers.port + 1 if peers.port < 65535 else 1))
    assert not disconnect(peers.listener.fileno(), LocalAddress("tcp", peers.port))  # never the listener
    with open(tmp_path / "f", "w") as f:
        assert not disconnect(f.fileno(), LocalAddress("tcp", peers.port))  # not a socket
    assert not disconnect(10_000, LocalAddress("tcp", peers.port))  # not open
    assert not _cut(client)
    assert disconnect(fd, LocalAddress("tcp", peers.port)) and _cut(client)


def test_local_address_of_endpoints() -> None:
    assert local_address("tcp://127.0.0.1:5556") == LocalAddress("tcp", 5556)
    assert local_address("tcp://[::1]:5557") == LocalAddress("tcp", 5557)
    assert local_address("ipc:///tmp/q.sock") == LocalAddress("ipc", "/tmp/q.sock")
    assert local_address("inproc://x") is None


@pytest.mark.parametrize("bad", [{"max_frame_bytes": 10}, {"max_prefix_bytes": 200, "max_frame_bytes": 128},
                                 {"max_subscribers": 0}, {"max_subscriptions_per_peer": 1}, {"handshake_ivl_ms": 1}])
def test_limits_are_validated(bad: dict) -> None:
    with pytest.raises(PublishConfigError):
        SubscriberLimits(**bad)


def test_on_a_real_socket_a_rule_breaker_is_cut_and_a_good_subscriber_keeps_its_stream() -> None:
    ctx = zmq.Context()
    with Publisher(PublisherConfig(endpoint=ANY_PORT)) as pub:
        good = ctx.socket(zmq.SUB)
        good.setsockopt(zmq.SUBSCRIBE, b"qamoe.v1.health")
        good.connect(pub.endpoint)
        bad = ctx.socket(zmq.SUB)
        bad.setsockopt(zmq.SUBSCRIBE, b"qamoe.v1.health")
        bad.setsockopt(zmq.SUBSCRIBE, b"\xff" * 40)  # breaks the prefix rule
        monitor = bad.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        bad.connect(pub.endpoint)
        assert pub.wait_for_subscribers(1)
        assert wait_for(lambda: sum(pub.stats().refused.values()) >= 1, 5.0), pub.stats()
        assert monitor.poll(5000), "the rule breaker was not disconnected"
        got = []
        for _ in range(20):  # in step with the good subscriber, as a live stream is
            seq = pub.publish(example_health())
            assert good.poll(2000), f"the good subscriber lost message {seq}"
            got.append(json.loads(good.recv_multipart()[1])["seq"])
        assert got == list(range(20))
        assert pub.stats().refused.get(BAD_PREFIX, 0) >= 1
        for s in (good, bad, monitor):
            s.close(linger=0)
    ctx.term()


def test_an_oversize_subscription_never_reaches_the_publisher() -> None:
    with Publisher(PublisherConfig(endpoint=ANY_PORT)) as pub:
        ctx = zmq.Context()
        s = ctx.socket(zmq.SUB)
        s.setsockopt(zmq.SUBSCRIBE, b"qamoe.v1." + b"x" * 4096)  # over the 128-byte frame limit
        monitor = s.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        s.connect(pub.endpoint)
        assert monitor.poll(5000), "ZeroMQ kept a peer that sent an oversize frame"
        assert not pub.wait_for_subscribers(1, timeout_s=0.3)  # the subscription itself never arrived
        s.close(linger=0)
        monitor.close(linger=0)
        ctx.term()
