"""The NATS bridge against a real nats-server with JetStream (issue 17): subjects, de-duplication ids, health,
seq gaps, redundant bridges, a stream with other settings. Nodes are real `edge.publish.Publisher`s sending
real-schema messages; the bridge runs in-process (`BridgeThread`)."""

from __future__ import annotations

import asyncio
import json
import time

import nats
import pytest
import zmq

from edge.fleet import BridgeConfig, BridgeThread, NatsConfig, StreamConflictError, StreamSettings
from edge.publish.examples import example_sentiment
from edge.publish.publisher import _encode
from edge.publish.recorder import free_endpoint
from tests.support.fleet import SyntheticNode, drain_durable, seqs_of
from tests.support.nats import NatsServer


def _bridge(server: NatsServer, endpoint: str, **kw) -> BridgeThread:  # type: ignore[no-untyped-def]
    cfg = BridgeConfig(endpoints=(endpoint,), site="lab", bridge_id=kw.pop("bridge_id", "b1"),
                       nats=NatsConfig(url=server.url), health_interval_s=0.2, **kw)
    return BridgeThread(cfg).start()


def _run_node(node: SyntheticNode, seconds: float) -> int:
    node.publisher.wait_for_subscribers(1, 3)
    node.start()
    time.sleep(seconds)
    return node.stop()


def test_every_message_is_stored_once_under_its_subject(nats_server: NatsServer) -> None:
    node = SyntheticNode("room 1/cam.0", rate_hz=100)
    bridge = _bridge(nats_server, node.endpoint)
    try:
        published = _run_node(node, 1.5)
        time.sleep(0.3)
        stats = bridge.stop()
    finally:
        node.close()
    got = drain_durable(nats_server.url, "check")
    sentiment = [(s, b) for s, b in got if s.startswith("qamoe.v1.sentiment.")]
    subjects = {s for s, _ in sentiment}
    assert len(subjects) == 1, subjects
    (subject,) = subjects
    assert subject.startswith("qamoe.v1.sentiment.lab.room_1_cam_0-"), subject  # sanitised, with a digest
    assert seqs_of(got, subject) == list(range(published)), (published, stats)
    assert stats.published == published and stats.dropped == 0 and stats.lost_upstream == 0
    health = [b for s, b in got if s == "qamoe.v1.health.lab.b1"]
    assert health and health[-1]["kind"] == "bridge" and health[-1]["bridge"]["published"] == published
    assert {"connected", "buffered", "dropped", "lost_upstream", "lag_ms_max"} <= set(health[-1]["bridge"])


def test_payloads_are_forwarded_byte_for_byte_with_a_dedupe_id(nats_server: NatsServer) -> None:
    node = SyntheticNode("cam0", rate_hz=50)
    bridge = _bridge(nats_server, node.endpoint)
    try:
        _run_node(node, 0.3)
        time.sleep(0.3)
        bridge.stop()
    finally:
        node.close()

    async def last() -> tuple[bytes, dict]:
        nc = await nats.connect(nats_server.url)
        msg = await nc.jetstream().get_last_msg("QAMOE", "qamoe.v1.sentiment.lab.cam0")
        await nc.close()
        return msg.data, dict(msg.headers or {})

    data, headers = asyncio.run(last())
    body = json.loads(data)
    assert data == _encode(body)  # the node's own bytes (the publisher's encoding), not re-encoded
    assert headers["Nats-Msg-Id"] == f"lab.cam0.sentiment.{body['seq']}.{body['sent']['mono_ns']}"


def test_two_bridges_on_one_node_store_each_message_once(nats_server: NatsServer) -> None:
    node = SyntheticNode("cam0", rate_hz=100)
    first = _bridge(nats_server, node.endpoint, bridge_id="a")
    second = _bridge(nats_server, node.endpoint, bridge_id="b")
    try:
        node.publisher.wait_for_subscribers(2, 3)
        published = _run_node(node, 1.0)
        time.sleep(0.3)
        a, b = first.stop(), second.stop()
    finally:
        node.close()
    got = drain_durable(nats_server.url, "check", subject="qamoe.v1.sentiment.>")
    assert seqs_of(got, "qamoe.v1.sentiment.lab.cam0") == list(range(published))
    assert a.published == b.published == published
    assert a.duplicates + b.duplicates >= published  # JetStream told one of them each time: a duplicate


def test_a_gap_in_seq_is_counted_as_lost_upstream(nats_server: NatsServer) -> None:
    endpoint = free_endpoint()
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.bind(endpoint)
    bridge = _bridge(nats_server, endpoint)
    try:
        time.sleep(0.5)  # the subscription reaches the PUB socket
        body = {**example_sentiment().body, "topic": "qamoe.v1.sentiment", "schema_version": "qamoe.v1",
                "sent": {"mono_ns": 1, "epoch_s": 1.0, "iso": "x"}}
        for seq in (0, 1, 2, 5, 6, 7, 0, 1):  # 3 and 4 lost; then the node restarts (seq back to 0)
            sent = {**body["sent"], "mono_ns": 1000 + len(str(seq)) + seq * 10 + int(time.monotonic_ns() % 7)}
            pub.send_multipart([b"qamoe.v1.sentiment", json.dumps({**body, "seq": seq, "sent": sent}).encode()])
            time.sleep(0.01)
        pub.send_multipart([b"qamoe.v1.sentiment", json.dumps({**body, "seq": 9, "source_id": ""}).encode()])
        time.sleep(0.5)
        stats = bridge.stop()
    finally:
        pub.close(0)
        ctx.term()
    assert stats.lost_upstream == 2 and stats.restarts_upstream == 1, stats
    assert stats.rejected == 1 and stats.published == 8


def test_a_stream_with_other_settings_is_refused_and_left_alone(nats_server: NatsServer) -> None:
    first = StreamSettings(max_age_s=3600)
    node_ep = free_endpoint()
    BridgeThread(BridgeConfig(endpoints=(node_ep,), nats=NatsConfig(url=nats_server.url), stream=first)) \
        .start().stop()
    with pytest.raises(StreamConflictError, match="max_age 3600 s instead of 7200 s") as err:
        BridgeThread(BridgeConfig(endpoints=(node_ep,), nats=NatsConfig(url=nats_server.url),
                                  stream=StreamSettings(max_age_s=7200))).start()
    assert err.value.exit_code == 2

    async def info() -> tuple[float, int]:
        nc = await nats.connect(nats_server.url)
        got = await nc.jetstream().stream_info("QAMOE")
        await nc.close()
        return got.config.max_age or 0.0, got.state.messages

    max_age, _ = asyncio.run(info())
    assert max_age == 3600  # unchanged
