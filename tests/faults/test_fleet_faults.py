"""Faults between the nodes, the bridge and JetStream (issue 17), with a real nats-server and `qamoe-bridge`
processes: the server killed for 5 s and restarted, a bridge killed and restarted (alone, and one of a
redundant pair), a durable consumer stopped and resumed. Within the bound (the bridge's buffer, the stream's
retention) nothing is lost or doubled; beyond it, the loss is counted exactly where the docs say."""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter

from edge.fleet import BridgeConfig, BridgeThread, NatsConfig, StreamSettings
from edge.fleet.tracking import SeqTracker
from tests.support.fleet import SyntheticNode, drain_durable, seqs_of, start_bridge
from tests.support.nats import NatsServer

SUBJECT = "qamoe.v1.sentiment.lab.cam0"
RATE_HZ = 50


def _bridge(server: NatsServer, node: SyntheticNode, bridge_id: str, *extra: str) -> subprocess.Popen[str]:
    return start_bridge("--nats", server.url, "--endpoint", node.endpoint, "--site", "lab", "--bridge-id",
                        bridge_id, "--health-interval", "0.2", "--drain", "15", *extra)


def _end(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    return err


def _last_health(got: list[tuple[str, dict]], bridge_id: str) -> dict:
    return [b for s, b in got if s == f"qamoe.v1.health.lab.{bridge_id}"][-1]["bridge"]


def _wait_connected(node: SyntheticNode, count: int = 1) -> None:
    assert node.publisher.wait_for_subscribers(count, 10), "the bridge did not subscribe"
    time.sleep(0.3)


def _outage(server: NatsServer, node: SyntheticNode, down_s: float) -> None:
    node.start()
    time.sleep(1.5)
    server.kill()
    time.sleep(down_s)
    server.start()
    time.sleep(4.0)  # the bridge's backoff (<= 5 s cap, here ~3 s) and its catch-up


def test_nats_down_for_5s_loses_nothing_within_the_buffer(nats_server: NatsServer, record) -> None:
    node = SyntheticNode("cam0", RATE_HZ)
    proc = _bridge(nats_server, node, "b1")
    try:
        _wait_connected(node)
        _outage(nats_server, node, 5.0)
        published = node.stop()
        err = _end(proc)
    finally:
        proc.kill()
        node.close()
    got = drain_durable(nats_server.url, "check")
    assert seqs_of(got, SUBJECT) == list(range(published)), err[-2000:]
    health = _last_health(got, "b1")
    assert health["dropped"] == 0 and health["reconnects"] >= 1 and health["published"] == published
    record(lost=0, note=f"{published} msgs, ~{5 * RATE_HZ} buffered across a 5 s outage")


def test_beyond_the_buffer_the_oldest_are_dropped_and_counted(nats_server: NatsServer, record) -> None:
    node = SyntheticNode("cam0", RATE_HZ)
    proc = _bridge(nats_server, node, "b1", "--buffer", "50")
    try:
        _wait_connected(node)
        _outage(nats_server, node, 5.0)
        published = node.stop()
        _end(proc)
    finally:
        proc.kill()
        node.close()
    got = drain_durable(nats_server.url, "check")
    seqs = seqs_of(got, SUBJECT)
    assert len(seqs) == len(set(seqs)) and seqs == sorted(seqs)  # no duplicates, in order
    missing = published - len(seqs)
    health = _last_health(got, "b1")
    assert missing > 100 and health["dropped"] == missing, (missing, health)
    assert health["lost_upstream"] == 0
    record(lost=missing, note=f"buffer 50: {missing} of {published} dropped (counted: {health['dropped']})")


def test_one_of_two_bridges_killed_and_restarted_loses_and_doubles_nothing(nats_server: NatsServer) -> None:
    node = SyntheticNode("cam0", RATE_HZ)
    a = _bridge(nats_server, node, "a")
    b = _bridge(nats_server, node, "b")
    try:
        _wait_connected(node, 2)
        node.start()
        time.sleep(1.0)
        a.kill()  # SIGKILL: whatever it held unacknowledged is gone with it
        a.wait(5)
        time.sleep(1.5)
        a = _bridge(nats_server, node, "a")
        time.sleep(1.5)
        published = node.stop()
        _end(a)
        _end(b)
    finally:
        a.kill()
        b.kill()
        node.close()
    got = drain_durable(nats_server.url, "check")
    seqs = seqs_of(got, SUBJECT)
    assert Counter(seqs).most_common(1)[0][1] == 1  # the Nats-Msg-Id of both bridges is the same: stored once
    assert seqs == list(range(published))


def test_a_lone_bridge_killed_and_restarted_counts_what_passed(nats_server: NatsServer, record) -> None:
    node = SyntheticNode("cam0", RATE_HZ)
    proc = _bridge(nats_server, node, "b1")
    try:
        _wait_connected(node)
        node.start()
        time.sleep(1.0)
        proc.kill()
        proc.wait(5)
        time.sleep(1.5)
        proc = _bridge(nats_server, node, "b1")
        time.sleep(2.0)
        published = node.stop()
        _end(proc)
    finally:
        proc.kill()
        node.close()
    got = drain_durable(nats_server.url, "check")
    seqs = seqs_of(got, SUBJECT)
    assert len(seqs) == len(set(seqs))
    missing = published - len(seqs)
    health = _last_health(got, "b1")  # the restarted bridge's: it looked up the last stored seq
    assert missing > 0 and health["lost_upstream"] == missing, (missing, health)
    record(lost=missing, note=f"bridge down ~1.5 s: {missing} lost, counted as lost upstream")


def _in_process_bridge(server: NatsServer, node: SyntheticNode, stream: StreamSettings) -> BridgeThread:
    cfg = BridgeConfig(endpoints=(node.endpoint,), site="lab", bridge_id="b1", stream=stream,
                       nats=NatsConfig(url=server.url))
    return BridgeThread(cfg).start()


def _consumer_pause(server: NatsServer, stream: StreamSettings, pause_s: float) -> tuple[list[int], int]:
    node = SyntheticNode("cam0", RATE_HZ)
    bridge = _in_process_bridge(server, node, stream)
    try:
        _wait_connected(node)
        node.start()
        time.sleep(0.5)
        first = drain_durable(server.url, "c1", subject=SUBJECT, idle_s=0.5, limit_s=1.0)
        time.sleep(pause_s)  # the consumer is away; the node and the bridge go on
        published = node.stop()
        time.sleep(0.5)
        bridge.stop()
    finally:
        node.close()
    second = drain_durable(server.url, "c1", subject=SUBJECT)
    return seqs_of(first, SUBJECT) + seqs_of(second, SUBJECT), published


def test_a_durable_consumer_stopped_for_30s_resumes_where_it_stopped(nats_server: NatsServer) -> None:
    seqs, published = _consumer_pause(nats_server, StreamSettings(), 30.0)  # issue 17: "stopped for 30 s"
    assert seqs == list(range(published))


def test_a_consumer_away_beyond_retention_sees_a_counted_gap(nats_server: NatsServer, record) -> None:
    seqs, published = _consumer_pause(nats_server, StreamSettings(max_bytes=64 << 10), 5.0)
    tracker = SeqTracker()
    tracker.resume(("cam0", "sentiment"), -1)  # counting from seq 0
    for s in seqs:
        tracker.observe(("cam0", "sentiment"), s)
    assert len(seqs) == len(set(seqs)) and tracker.lost > 0
    assert len(seqs) + tracker.lost == published
    record(lost=tracker.lost, note=f"stream max 64 KiB: {tracker.lost} of {published} aged out before read")
