"""The publisher's subscriber rules (`edge.publish.guard`) on their own, and on a real socket: which prefixes are
honoured, the per-peer, subscriber and connection caps (which connection the connection cap displaces), and that
`disconnect` only ever touches a connection of the publisher's own port. The hostile processes against the real `qamoe-live` are in
tests/faults/test_hostile_subscribers.py."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import zmq

from edge.publish import Publisher, PublisherConfig
from edge.publish.errors import PublishConfigError
from edge.publish.examples import example_health
from edge.publish.guard import (
    BAD_PREFIX,
    TOO_MANY_CONNECTIONS,
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
from tests.support.admission import admit_subscriber, assert_ten_gap_free
from tests.support.live_fixtures import REPO

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


def test_the_connection_cap_displaces_the_longest_silent_connection_never_a_subscriber(peers: _Peers) -> None:
    limits = SubscriberLimits(max_subscribers=2, max_connections=3)
    guard = SubscriberGuard(limits, LocalAddress("tcp", peers.port))
    sub, silent_old, silent_new = (peers.connect() for _ in range(3))
    assert guard.accepted(sub[0]) is None and guard.subscription(sub[0], b"\x01") is None
    assert guard.accepted(silent_old[0]) is None
    assert guard.accepted(silent_new[0]) is None  # 3 connections: at the cap, nobody is cut
    # one too many: the connection that has gone longest without subscribing goes; the subscriber, older
    # still, stays, and so does the newcomer
    fourth = peers.connect()
    assert guard.accepted(fourth[0]) is None  # below the door's threshold the cut waits for the loop's turn
    assert guard.enforce() == TOO_MANY_CONNECTIONS and _cut(silent_old[1])
    assert not _cut(sub[1]) and not _cut(silent_new[1]) and not _cut(fourth[1])
    # a connection cut but not yet reported closed no longer counts: the next one displaces the next silent one
    fifth = peers.connect()
    assert guard.accepted(fifth[0]) is None and guard.enforce() == TOO_MANY_CONNECTIONS and _cut(silent_new[1])
    assert not _cut(fourth[1]) and not _cut(fifth[1])
    assert guard.subscription(fourth[0], b"\x01qamoe.v1.health") is None  # a newcomer subscribes: it is safe
    sixth = peers.connect()
    assert guard.accepted(sixth[0]) is None and guard.enforce() == TOO_MANY_CONNECTIONS
    assert _cut(fifth[1]) and not _cut(fourth[1])
    assert guard.refused_by == {TOO_MANY_CONNECTIONS: 3}
    for cut in (silent_old, silent_new, fifth):
        guard.closed(cut[0])
    assert guard.connected == 3 and guard.subscribers == 2


def test_a_burst_of_connections_does_not_displace_a_newcomer_whose_subscription_is_in(peers: _Peers) -> None:
    """A burst of connections (a reconnect storm let in at once when the port's door opens) arrives faster than
    the publisher's loop turns: accepting them cuts nobody until the count is above the door's threshold,
    and the loop's `enforce` runs after the subscriptions that have arrived are judged, so a newcomer that
    subscribed inside the burst is a subscriber, not the oldest silent connection."""
    limits = SubscriberLimits(max_subscribers=2, max_connections=2, pause_accepts_at=5)
    guard = SubscriberGuard(limits, LocalAddress("tcp", peers.port))
    old, newcomer = peers.connect(), peers.connect()
    burst = [peers.connect() for _ in range(3)]
    for fd, _ in (old, newcomer, *burst):
        assert guard.accepted(fd) is None  # 5 open: at the door's threshold, nobody is cut yet
    assert guard.subscription(newcomer[0], b"\x01qamoe.v1.sentiment") is None  # its notice, read this turn
    assert guard.enforce() == TOO_MANY_CONNECTIONS  # the turn's end: down to the cap, silent ones first in
    assert _cut(old[1]) and _cut(burst[0][1]) and _cut(burst[1][1])
    assert not _cut(newcomer[1]) and not _cut(burst[2][1]) and guard.enforce() is None
    # above the threshold a connection displaces the oldest silent one at once, whatever the loop does
    more = [peers.connect() for _ in range(4)]
    for fd, _ in more:
        guard.accepted(fd)
    assert _cut(burst[2][1]) and not _cut(newcomer[1])  # 6 open at more[3]: the oldest silent one went
    assert not any(_cut(c) for _, c in more)
    assert guard.refused_by[TOO_MANY_CONNECTIONS] == 4


def test_a_full_house_of_subscribers_is_not_displaced(peers: _Peers) -> None:
    guard = SubscriberGuard(SubscriberLimits(max_subscribers=2, max_connections=2), LocalAddress("tcp", peers.port))
    subs = [peers.connect() for _ in range(2)]
    for fd, _ in subs:
        assert guard.accepted(fd) is None and guard.subscription(fd, b"\x01") is None
    late = peers.connect()
    assert guard.subscription(late[0], b"\x01") == TOO_MANY_SUBSCRIBERS  # its notice before its accept
    assert guard.accepted(late[0]) is None  # already cut: it does not count, and no subscriber is displaced
    assert not any(_cut(c) for _, c in subs) and _cut(late[1])


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
    os.fstat(fd)  # shut down, never closed: the descriptor is ZeroMQ's


_OUT_OF_DESCRIPTORS = """
import resource, socket, sys
from edge.publish.guard import LocalAddress, disconnect
listener = socket.create_server(("127.0.0.1", 0))
client = socket.create_connection(listener.getsockname())
server, _ = listener.accept()
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
held = []
try:
    while True:
        held.append(socket.socket())
except OSError:
    pass
ok = disconnect(server.fileno(), LocalAddress("tcp", listener.getsockname()[1]))
client.settimeout(2.0)
try:
    print(ok, client.recv(1) == b"")
except TimeoutError:
    print(ok, False)
"""


def test_disconnect_works_when_the_process_is_out_of_descriptors() -> None:
    """When the table is full is when connections must be cut: `disconnect` needs no descriptor of its own."""
    done = subprocess.run([sys.executable, "-c", _OUT_OF_DESCRIPTORS], check=False, capture_output=True, text=True,
                          timeout=30, cwd=REPO)
    assert done.stdout.split() == ["True", "True"], done.stderr[-2000:]


def test_local_address_of_endpoints() -> None:
    assert local_address("tcp://127.0.0.1:5556") == LocalAddress("tcp", 5556)
    assert local_address("tcp://[::1]:5557") == LocalAddress("tcp", 5557)
    assert local_address("ipc:///tmp/q.sock") == LocalAddress("ipc", "/tmp/q.sock")
    assert local_address("inproc://x") is None


@pytest.mark.parametrize("bad", [{"max_frame_bytes": 10}, {"max_prefix_bytes": 200, "max_frame_bytes": 128},
                                 {"max_subscribers": 0}, {"max_subscriptions_per_peer": 1}, {"handshake_ivl_ms": 1},
                                 {"max_connections": 16}, {"max_connections": 0}])
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


def test_on_a_real_socket_silent_connections_cannot_keep_a_subscriber_out() -> None:
    """Plain SUB sockets that connect and never subscribe stay connected for good (ZeroMQ answers heartbeats
    for them); over the connection cap, each newcomer displaces one, and a subscriber gets in."""
    limits = SubscriberLimits(max_subscribers=4, max_connections=8)
    ctx = zmq.Context()
    with Publisher(PublisherConfig(endpoint=ANY_PORT, limits=limits)) as pub:
        silent = []
        for _ in range(12):
            s = ctx.socket(zmq.SUB)
            s.setsockopt(zmq.RECONNECT_IVL, 1000)  # come back, but not in a storm
            s.connect(pub.endpoint)
            silent.append(s)
        assert wait_for(lambda: pub.stats().refused.get(TOO_MANY_CONNECTIONS, 0) >= 4, 5.0), pub.stats()
        assert pub.stats().connected <= 8 + 4  # the cap, plus cuts ZeroMQ has not reported closed yet
        good = admit_subscriber(ctx, pub)
        assert_ten_gap_free(pub, good)
        assert pub.stats().subscribers == 1
        for s in (*silent, good):
            s.close(linger=0)
    ctx.term()


# The publisher's socket thread stops reading its socket monitor (as when it has stopped, during close) while
# connections keep coming: each is two monitor events, and at ~2,000 unread libzmq 4.3.5's I/O thread waits in a
# blocking send, holding a lock that disable_monitor() takes too: close() used to hang the whole process there.
CLOSE_IN_A_STORM = r"""
import socket, time
from edge.publish import Publisher, PublisherConfig
pub = Publisher(PublisherConfig(endpoint="tcp://127.0.0.1:0"))
pub._drain_events = lambda *args, **kwargs: False  # nobody reads the monitor any more
port = int(pub.endpoint.rpartition(":")[2])
done = streak = 0
while done < 1200 and streak < 3:  # until ZeroMQ stops accepting (its I/O thread waits) or 1,200 went by
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        done, streak = done + 1, 0
    except OSError:
        streak += 1
started = time.monotonic()
pub.close()
print("closed after", done, "connections in", round(time.monotonic() - started, 2), "s")
"""


def test_close_does_not_hang_with_thousands_of_monitor_events_unread() -> None:
    out = subprocess.run([sys.executable, "-c", CLOSE_IN_A_STORM], cwd=REPO, capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 0 and "closed after" in out.stdout, (out.stdout, out.stderr[-2000:])
