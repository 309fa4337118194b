"""qamoe-record from NATS JetStream (issue 17: "writes every message it receives, from ZeroMQ or NATS"): two
real nodes (`edge.publish.Publisher`s sending real-schema messages) -> an in-process bridge -> a real
`nats-server -js` -> a real `qamoe-record DIR --nats URL` process; every published seq of both nodes is in the
recording exactly once, the gap index says nothing is missing, and the export reads both nodes' windows."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from edge.fleet import BridgeConfig, BridgeThread, NatsConfig
from edge.record.gaps import GapIndex
from edge.record.reader import read_recording
from tests.support.fleet import SyntheticNode
from tests.support.nats import NatsServer

BIN = Path(sys.executable).parent


def _record(*args: str | Path, timeout_s: float = 30) -> subprocess.CompletedProcess[str]:
    argv = [str(BIN / "qamoe-record"), *map(str, args)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)


def test_a_recording_from_jetstream_holds_every_seq_of_every_node_once(nats_server: NatsServer,
                                                                      tmp_path: Path) -> None:
    nodes = [SyntheticNode(f"room{k}", rate_hz=50) for k in range(2)]
    cfg = BridgeConfig(endpoints=tuple(n.endpoint for n in nodes), site="lab", bridge_id="b1",
                       nats=NatsConfig(url=nats_server.url), health_interval_s=0.2)
    bridge = BridgeThread(cfg).start()
    try:
        for n in nodes:
            n.publisher.wait_for_subscribers(1, 3)
            n.start()
        time.sleep(1.0)
        published = [n.stop() for n in nodes]
        time.sleep(0.3)
        bridge.stop()
    finally:
        for n in nodes:
            n.close()
    rec = tmp_path / "rec"
    done = _record(rec, "--nats", nats_server.url, "--subject", "qamoe.v1.sentiment.>", "--since", "all",
                   "--duration", "2")
    assert done.returncode == 0, done.stderr
    recording = read_recording(rec)
    for node, count in zip(nodes, published, strict=True):
        seqs = [r.payload["seq"] for r in recording.records if r.payload.get("source_id") == node.source_id]
        assert seqs == list(range(count)), (node.source_id, count, seqs[:5], len(seqs))
    assert all(r.topic == "qamoe.v1.sentiment" for r in recording.records)
    assert GapIndex.of((r.topic, r.payload, r.received_wall_ns) for r in recording.records).missing == 0
    table = tmp_path / "windows.csv"
    assert _record("export", rec, table).returncode == 0
    assert len(table.read_text().splitlines()) == 1 + sum(published)


def test_nats_only_options_without_nats_are_refused(tmp_path: Path) -> None:
    done = _record(tmp_path / "rec", "--since", "all", "--duration", "1")
    assert done.returncode == 2 and "add --nats URL" in done.stderr and "Traceback" not in done.stderr


def test_an_unreachable_nats_server_is_one_line_and_exit_5(tmp_path: Path) -> None:
    done = _record(tmp_path / "rec", "--nats", "nats://127.0.0.1:1", "--nats-timeout", "1", "--duration", "1")
    assert done.returncode == 5, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
