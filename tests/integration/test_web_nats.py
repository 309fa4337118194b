"""qamoe-web on a node behind a bridge (issue 18: "subscribes to the ZeroMQ stream, or to NATS"): a real node
(`edge.publish.Publisher`, real-schema messages) -> an in-process bridge -> a real `nats-server -js` -> a real
`qamoe-web --nats URL --subject ...` process -> a WebSocket viewer, which receives the node's estimates; a
second node on the same subject filter is left out (the page shows one source). Bad NATS input: one line."""

from __future__ import annotations

import json
import subprocess
import time

from websockets.sync.client import connect

from edge.cli.webrun import WebCommand, WebRun
from edge.fleet import BridgeConfig, BridgeThread, NatsConfig
from edge.publish.recorder import free_endpoint
from tests.support.fleet import SyntheticNode
from tests.support.nats import NatsServer

TOKEN = "t" * 24


def _updates(url: str, seconds: float) -> list[dict]:
    out: list[dict] = []
    deadline = time.monotonic() + seconds
    with connect(url, open_timeout=5) as ws:
        while time.monotonic() < deadline:
            try:
                out.append(json.loads(ws.recv(timeout=0.5)))
            except TimeoutError:
                continue
    return out


def test_the_page_follows_one_node_through_jetstream(nats_server: NatsServer) -> None:
    nodes = [SyntheticNode("room1", rate_hz=20), SyntheticNode("room2", rate_hz=20)]
    bridge = BridgeThread(BridgeConfig(endpoints=tuple(n.endpoint for n in nodes), site="lab", bridge_id="b1",
                                       nats=NatsConfig(url=nats_server.url))).start()
    command = WebCommand(free_endpoint(), token=TOKEN,
                         args=("--nats", nats_server.url, "--subject", "qamoe.v1.*.lab.room1"))
    try:
        with WebRun(command) as web:
            for n in nodes:
                n.publisher.wait_for_subscribers(1, 5)
                n.start()
            updates = _updates(web.base.replace("http://", "ws://") + f"ws?token={TOKEN}", 2.5)
            web.stop()
    finally:
        for n in nodes:
            n.close()
        bridge.stop()
    text = json.dumps(updates)
    assert updates, "no update reached the viewer"
    assert "room1" in text and "room2" not in text, text[:500]
    assert any('"valence"' in json.dumps(u) for u in updates)


def test_bad_nats_input_is_one_line() -> None:
    cases = [
        (("--nats", "nats://127.0.0.1:1", "--nats-timeout", "1"), 5),
        (("--subject", "qamoe.v1.>.x"), 2),  # a subject without --nats
        (("--nats", "nats://127.0.0.1:1", "--curve-server-key", "x.key"), 2),
    ]
    for extra, code in cases:
        argv = WebCommand(free_endpoint(), token=TOKEN, args=extra).argv()
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == code, (extra, done.returncode, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr, done.stderr
