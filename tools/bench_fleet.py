"""Fleet benchmark (issue 17): N simulated nodes -> one qamoe-bridge -> NATS JetStream -> one consumer, against
ZeroMQ direct (the same nodes read by one subscriber) in the same run.

  python tools/bench_fleet.py                                  # 64 nodes at 2 msg/s, then 200 at 100 msg/s
  python tools/bench_fleet.py --nodes 64 --rate 2 --duration 20

Nodes: one process publishing real-schema sentiment messages (docs/messages.md; the envelope's seq and
sent.mono_ns set per message) on N ZeroMQ PUB sockets, at `rate` each, evenly spread. Latency: consumer
arrival - the node's sent.mono_ns (one host, one monotonic clock). The consumer is an ordered JetStream push
consumer (what `qamoe-tap --nats` uses). Needs nats-server (Debian package) on PATH."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nats
import numpy as np
import zmq
from nats.js.api import ConsumerConfig, DeliverPolicy

from edge.publish.examples import example_sentiment
from edge.publish.wire import SCHEMA_VERSION, TOPIC_SENTIMENT, WallClock

MONO = re.compile(rb'"mono_ns":(\d+)')
SEQ = re.compile(rb'"seq":(\d+)')
SOURCE = re.compile(rb'"source_id":"([^"]*)"')
PROFILE = os.environ.get("BENCH_FLEET_PROFILE")  # a file: profile the bridge (needs --duration in the bridge)
SETTLE_S = 2.0  # subscribers connect before the nodes start sending


def free_port() -> int:
    return int(free_endpoints(1)[0].rsplit(":", 1)[1])


def free_endpoints(n: int) -> list[str]:
    """n distinct loopback endpoints (all held open while choosing, so none repeats)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [f"tcp://127.0.0.1:{s.getsockname()[1]}" for s in socks]
    finally:
        for s in socks:
            s.close()


# ------------------------------------------------------------------------------------------------- nodes
def template() -> str:
    body = {"schema_version": SCHEMA_VERSION, "topic": TOPIC_SENTIMENT, "seq": 0,
            "sent": {"mono_ns": 0, "epoch_s": 0.0, "iso": ""}, **example_sentiment().body}
    text = json.dumps(body, separators=(",", ":"))
    text = text.replace('"seq":0', '"seq":{seq}').replace('"mono_ns":0', '"mono_ns":{mono}')
    text = text.replace('"epoch_s":0.0', '"epoch_s":{epoch}').replace('"iso":""', '"iso":"{iso}"')
    return text.replace('"source_id":"cam0"', '"source_id":"{source}"')


def run_nodes(endpoints: list[str], rate: float, duration: float) -> None:
    """The node process: N PUB sockets, `rate` msg/s each for `duration` s; prints how many it sent."""
    ctx = zmq.Context()
    socks = []
    for ep in endpoints:
        s = ctx.socket(zmq.PUB)
        s.setsockopt(zmq.SNDHWM, 100_000)
        s.bind(ep)
        socks.append(s)
    fmt = template().replace("{", "{{").replace("}", "}}")
    for key in ("seq", "mono", "epoch", "iso", "source"):
        fmt = fmt.replace("{{" + key + "}}", "{" + key + "}")
    time.sleep(SETTLE_S)
    clock, n = WallClock.now(), len(socks)
    period, sent = 1.0 / (rate * n), 0
    start = time.monotonic()
    while (now := time.monotonic()) - start < duration:
        due = int((now - start) / period) + 1
        while sent < due:
            i, seq = sent % n, sent // n
            mono = time.monotonic_ns()
            tp = clock.timepoint(mono)
            data = fmt.format(seq=seq, mono=mono, epoch=tp["epoch_s"], iso=tp["iso"], source=f"node{i}")
            socks[i].send_multipart([TOPIC_SENTIMENT.encode(), data.encode()])
            sent += 1
        time.sleep(min(period, 0.002))
    time.sleep(0.5)
    print(sent, flush=True)
    for s in socks:
        s.close(linger=2000)
    ctx.term()


def start_nodes(endpoints: list[str], rate: float, duration: float) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, __file__, "--role", "nodes", "--rate", str(rate), "--duration",
                             str(duration), "--endpoints", ",".join(endpoints)], stdout=subprocess.PIPE, text=True)


# ----------------------------------------------------------------------------------------------- consumers
class Tally:
    def __init__(self) -> None:
        self.lat_ns: list[int] = []
        self.seen: set[tuple[bytes, int]] = set()
        self.dupes = 0
        self.first = self.last = 0.0

    def add(self, data: bytes) -> None:
        now = time.monotonic_ns()
        mono, seq, src = MONO.search(data), SEQ.search(data), SOURCE.search(data)
        if not (mono and seq and src):
            return
        key = (src[1], int(seq[1]))
        if key in self.seen:
            self.dupes += 1
            return
        self.seen.add(key)
        self.lat_ns.append(now - int(mono[1]))
        self.first = self.first or time.monotonic()
        self.last = time.monotonic()


def consume_zmq(endpoints: list[str], nodes: subprocess.Popen[str], tally: Tally) -> None:
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 1_000_000)
    sub.setsockopt(zmq.SUBSCRIBE, b"qamoe.v1.")
    for ep in endpoints:
        sub.connect(ep)
    while nodes.poll() is None or sub.poll(200):
        if sub.poll(200):
            tally.add(sub.recv_multipart()[1])
    sub.close(0)
    ctx.term()


async def consume_nats(url: str, nodes: subprocess.Popen[str], tally: Tally, idle_s: float) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    for _ in range(100):  # the bridge creates the stream
        try:
            await js.stream_info("QAMOE")
            break
        except nats.js.errors.NotFoundError:
            await asyncio.sleep(0.1)
    sub = await js.subscribe("qamoe.v1.sentiment.>", stream="QAMOE", ordered_consumer=True,
                             config=ConsumerConfig(deliver_policy=DeliverPolicy.NEW),
                             pending_msgs_limit=1_000_000, pending_bytes_limit=2 << 30)
    while True:
        try:
            msg = await sub.next_msg(timeout=idle_s)
        except nats.errors.TimeoutError:
            if nodes.poll() is not None:
                break
            continue
        tally.add(msg.data)
    await nc.close()


# ----------------------------------------------------------------------------------------------- phases
def summary(name: str, tally: Tally, sent: int, duration: float) -> dict:
    lat = np.array(tally.lat_ns) / 1e6 if tally.lat_ns else np.array([np.nan])
    got = len(tally.seen)
    span = max(tally.last - tally.first, 1e-9)
    return {"path": name, "sent": sent, "received": got, "lost": sent - got, "duplicates": tally.dupes,
            "rate_msgs_s": round(got / span, 1), "offered_msgs_s": round(sent / duration, 1),
            "p50_ms": round(float(np.percentile(lat, 50)), 2), "p95_ms": round(float(np.percentile(lat, 95)), 2),
            "p99_ms": round(float(np.percentile(lat, 99)), 2)}


def phase_zmq(n: int, rate: float, duration: float) -> dict:
    endpoints = free_endpoints(n)
    tally = Tally()
    nodes = start_nodes(endpoints, rate, duration)
    consume_zmq(endpoints, nodes, tally)
    return summary("zeromq-direct", tally, int(nodes.communicate()[0].split()[-1]), duration)


def phase_nats(n: int, rate: float, duration: float, url: str) -> dict:
    endpoints = free_endpoints(n)
    script = Path(sys.executable).parent / "qamoe-bridge"
    prefix = [sys.executable, "-m", "cProfile", "-o", PROFILE, "-m", "edge.cli.bridge"] if PROFILE else [str(script)]
    args = [*prefix, "--nats", url, "--site", "bench", "--bridge-id", "b", "--buffer", "1000000", "-q",
            "--max-bytes", "8G", "--drain", "30"] + [a for ep in endpoints for a in ("--endpoint", ep)]
    bridge = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    tally = Tally()
    nodes = start_nodes(endpoints, rate, duration)
    asyncio.run(consume_nats(url, nodes, tally, idle_s=3.0))
    if PROFILE:
        bridge.send_signal(2)  # SIGINT: KeyboardInterrupt unwinds through cProfile, which writes the file
    else:
        bridge.terminate()
    err = bridge.communicate(timeout=60)[1]
    if bridge.returncode != 143:
        print(f"bridge exited {bridge.returncode}: {err[-500:]}", file=sys.stderr)
    return summary("nats-jetstream", tally, int(nodes.communicate()[0].split()[-1]), duration)


def run_case(n: int, rate: float, duration: float) -> list[dict]:
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    with tempfile.TemporaryDirectory() as store:
        port = free_port()
        server = subprocess.Popen([binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", store],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            rows = [phase_zmq(n, rate, duration), phase_nats(n, rate, duration, f"nats://127.0.0.1:{port}")]
        finally:
            server.terminate()
            server.wait(10)
    for row in rows:
        row.update(nodes=n, rate_per_node=rate)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--role", default="bench", choices=("bench", "nodes"))
    p.add_argument("--nodes", type=int, action="append", help="nodes (repeat with --rate; default 64 and 200)")
    p.add_argument("--rate", type=float, action="append", help="msgs/s per node (default 2 and 100)")
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--endpoints", default="")
    p.add_argument("--out", type=Path, help="also write the rows as JSON")
    args = p.parse_args()
    if args.role == "nodes":
        run_nodes(args.endpoints.split(","), args.rate[0], args.duration)
        return
    cases = list(zip(args.nodes or [64, 200], args.rate or [2.0, 100.0], strict=True))
    rows = [row for n, rate in cases for row in run_case(n, rate, args.duration)]
    for row in rows:
        print(json.dumps(row), flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
