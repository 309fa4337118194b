"""The publishing port's door (`edge.publish.door`) on real sockets: while shut, a new TCP connection stays
half-open in the kernel (its peer's connect() returns, nobody can accept it) and gets in once the door opens;
connections already accepted are not touched; the shut/open rule; and a Publisher that shuts its door when
too many connections are open, while a subscriber still gets in and receives everything. Linux only (the door
is a socket filter); the storm it is for is in tests/faults/test_hostile_subscribers.py."""

from __future__ import annotations

import socket
import sys

import pytest
import zmq

from edge.publish import Publisher, PublisherConfig
from edge.publish.door import MAX_SHUT_S, MIN_SHUT_S, Door, find_listener
from edge.publish.errors import PublishConfigError
from edge.publish.guard import TOO_MANY_CONNECTIONS, LocalAddress, SubscriberLimits
from tests.integration.test_sources_worker import wait_for
from tests.support.admission import admit_subscriber, assert_ten_gap_free

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the door is a Linux socket filter")


@pytest.fixture()
def listener():  # type: ignore[no-untyped-def]
    ls = socket.create_server(("127.0.0.1", 0))
    yield ls
    ls.close()


def _door(ls: socket.socket) -> Door:
    port = ls.getsockname()[1]
    fd = find_listener(port)
    assert fd == ls.fileno()
    return Door(fd, port, close_above=2, open_at=1)


def test_find_listener_finds_only_a_listening_socket_of_that_port(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    assert find_listener(port) == listener.fileno()
    client = socket.create_connection(("127.0.0.1", port))  # connected sockets of that port are not it
    server, _ = listener.accept()
    listener.close()
    assert find_listener(port) is None
    client.close()
    server.close()


def test_a_shut_door_keeps_new_connections_out_and_lets_them_in_when_it_opens(listener: socket.socket) -> None:
    door = _door(listener)
    port = listener.getsockname()[1]
    before = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    door.follow(3, now=100.0)
    assert door.shut and door.shut_count == 1
    late = socket.create_connection(("127.0.0.1", port), timeout=2)  # the kernel answers the SYN ...
    late.sendall(b"hello")
    listener.settimeout(0.5)
    with pytest.raises(TimeoutError):  # ... and hands nothing over while the door is shut
        listener.accept()
    before.sendall(b"still here")  # an accepted connection is its own socket: untouched
    accepted.settimeout(2)
    assert accepted.recv(10) == b"still here"
    door.follow(1, now=100.0 + MIN_SHUT_S + 1e-6)
    assert not door.shut
    listener.settimeout(5)  # the peer's next retransmission completes it (0.2 s, 0.6 s ... after it sent)
    server, _ = listener.accept()
    server.settimeout(2)
    assert server.recv(5) == b"hello"
    for s in (before, accepted, late, server):
        s.close()


def test_the_door_stays_shut_at_least_min_and_at_most_max(listener: socket.socket) -> None:
    door = _door(listener)
    door.follow(2, now=10.0)
    assert not door.shut  # not more than close_above
    door.follow(3, now=10.0)
    door.follow(1, now=10.0 + MIN_SHUT_S / 2)
    assert door.shut  # down to open_at, but not shut long enough: the peers just cut come back
    door.follow(1, now=10.0 + MIN_SHUT_S + 1e-6)
    assert not door.shut
    door.follow(50, now=20.0)
    door.follow(50, now=20.0 + MAX_SHUT_S / 2)
    assert door.shut
    door.follow(50, now=20.0 + MAX_SHUT_S)
    assert not door.shut  # still crowded, but never shut for longer than that
    assert door.shut_count == 2 and door.shut_s == pytest.approx(MIN_SHUT_S + MAX_SHUT_S, abs=1e-5)


def test_no_door_without_a_tcp_port() -> None:
    limits = SubscriberLimits()
    assert Door.for_endpoint(None, limits) is None  # inproc
    assert Door.for_endpoint(LocalAddress("ipc", "/tmp/qamoe.sock"), limits) is None
    assert Door.for_endpoint(LocalAddress("tcp", 9), limits) is None  # nothing of this process listens there


@pytest.mark.parametrize("bad", [64, 63, 0, 200_001, "128"])
def test_pause_accepts_at_must_be_above_the_connection_cap(bad: object) -> None:
    with pytest.raises(PublishConfigError, match="pause_accepts_at"):
        SubscriberLimits(pause_accepts_at=bad)  # type: ignore[arg-type]


def test_pause_accepts_at_defaults_to_twice_the_connection_cap() -> None:
    assert SubscriberLimits().accept_pause_threshold == 128
    assert SubscriberLimits(max_connections=100).accept_pause_threshold == 200
    assert SubscriberLimits(pause_accepts_at=65).accept_pause_threshold == 65


def test_a_crowded_publisher_shuts_its_door_and_a_subscriber_still_gets_everything() -> None:
    """SUB sockets that never subscribe and come back 10 ms after each cut: a reconnect storm. The door shuts
    (counted in stats), and a subscriber that connects meanwhile gets in and misses nothing."""
    limits = SubscriberLimits(max_subscribers=2, max_connections=4, pause_accepts_at=8)
    ctx = zmq.Context()
    with Publisher(PublisherConfig(endpoint="tcp://127.0.0.1:0", limits=limits)) as pub:
        silent = []
        for _ in range(60):
            s = ctx.socket(zmq.SUB)
            s.setsockopt(zmq.RECONNECT_IVL, 10)
            s.connect(pub.endpoint)
            silent.append(s)
        assert wait_for(lambda: pub.stats().accept_pauses >= 1, 5.0), pub.stats()
        assert pub.stats().pause_accepts_at == 8  # what health shows as the subscriber_door queue's capacity
        assert pub.stats().refused.get(TOO_MANY_CONNECTIONS, 0) > 0
        good = admit_subscriber(ctx, pub, reconnect_ivl_ms=100)
        assert_ten_gap_free(pub, good)
        for s in (*silent, good):
            s.close(linger=0)
    ctx.term()
