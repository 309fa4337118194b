"""A subscriber let in past silent peers (the connection cap and the port's door, issue 20): connect a real SUB
socket, wait until the publisher counts it as its one subscriber, then check it receives ten messages without a
gap. Shared by tests/integration/test_publish_guard.py and test_publish_door.py."""

from __future__ import annotations

import json

import zmq

from edge.publish import Publisher
from edge.publish.examples import example_health
from tests.integration.test_sources_worker import wait_for


def admit_subscriber(ctx: zmq.Context, pub: Publisher, reconnect_ivl_ms: int = 10,
                     timeout_s: float = 10.0) -> zmq.Socket:
    """A SUB socket on pub's health topic, once the publisher counts one subscriber (the caller closes it)."""
    good = ctx.socket(zmq.SUB)
    good.setsockopt(zmq.SUBSCRIBE, b"qamoe.v1.health")
    good.setsockopt(zmq.RECONNECT_IVL, reconnect_ivl_ms)
    good.connect(pub.endpoint)

    def admitted() -> bool:
        # a SUB socket sends its subscriptions again after a reconnect only once its own thread touches it
        good.getsockopt(zmq.EVENTS)
        return pub.stats().subscribers == 1

    # (not wait_for_subscribers: it counts the subscriptions of connections cut before they were judged)
    assert wait_for(admitted, timeout_s), pub.stats()
    return good


def assert_ten_gap_free(pub: Publisher, good: zmq.Socket) -> None:
    """Ten messages published now all reach `good`, in order, without a gap."""
    got = []
    for _ in range(10):
        seq = pub.publish(example_health())
        assert good.poll(2000), f"the subscriber lost message {seq}"
        got.append(json.loads(good.recv_multipart()[1])["seq"])
    assert got == list(range(got[0], got[0] + 10))
