"""Fleet benchmark (issue 17): N simulated nodes -> qamoe-bridge -> NATS JetStream -> one consumer, against
ZeroMQ direct (the same nodes read by one subscriber) in the same run.

  python tools/bench_fleet.py                                  # 64 nodes at 2 msg/s, then 200 at 100 msg/s
  python tools/bench_fleet.py --nodes 64 --rate 2 --duration 20
  python tools/bench_fleet.py --baseline-ref HEAD              # also the bridge as committed, same run
  python tools/bench_fleet.py --bridges 1 --bridges 2          # one bridge, then two sharing the nodes

`--baseline-ref REF` runs the bridge phase a second time with `edge/` as it is at git REF (exported with
`git archive` into a temporary folder put first on PYTHONPATH), right before the current code's, against the
same broker: before/after from one run. `--bridges K` splits the N endpoints over K bridge processes (one
stream). Rates: `rate_msgs_s` is what the consumer received per second; `stored_msgs_s` is what JetStream
stored per second (its own timestamps), which is the bridge's sustained rate even when the consumer lags.
`bridge_cpu_us_per_msg`: CPU time of the bridge process(es) per message sent.

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
    print(sent, time.process_time(), flush=True)  # what it sent, and its CPU seconds
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
        self.stored_ns: list[int] = []  # JetStream's store time of each message (NATS only)

    def add(self, data: bytes, reply: str = "") -> None:
        if reply.startswith("$JS.ACK."):  # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>
            self.stored_ns.append(int(reply.split(".")[7]))
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
        tally.add(msg.data, msg.reply)
    await nc.close()


# ----------------------------------------------------------------------------------------------- phases
def summary(name: str, tally: Tally, sent: int, duration: float) -> dict:
    lat = np.array(tally.lat_ns) / 1e6 if tally.lat_ns else np.array([np.nan])
    got = len(tally.seen)
    span = max(tally.last - tally.first, 1e-9)
    stored = None
    if len(tally.stored_ns) > 1:
        stored = round(len(tally.stored_ns) / max((max(tally.stored_ns) - min(tally.stored_ns)) / 1e9, 1e-9), 1)
    return {"path": name, "sent": sent, "received": got, "lost": sent - got, "duplicates": tally.dupes,
            "rate_msgs_s": round(got / span, 1), "stored_msgs_s": stored, "offered_msgs_s": round(sent / duration, 1),
            "p50_ms": round(float(np.percentile(lat, 50)), 2), "p95_ms": round(float(np.percentile(lat, 95)), 2),
            "p99_ms": round(float(np.percentile(lat, 99)), 2)}


def phase_zmq(n: int, rate: float, duration: float) -> dict:
    endpoints = free_endpoints(n)
    tally = Tally()
    nodes = start_nodes(endpoints, rate, duration)
    consume_zmq(endpoints, nodes, tally)
    return summary("zeromq-direct", tally, int(nodes.communicate()[0].split()[-2]), duration)


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_bridge(url: str, endpoints: list[str], index: int, env: dict[str, str]) -> subprocess.Popen[str]:
    prof = [sys.executable, "-m", "cProfile", "-o", f"{PROFILE}.{index}", "-m", "edge.cli.bridge"]
    prefix = prof if PROFILE else [sys.executable, "-m", "edge.cli.bridge"]
    args = [*prefix, "--nats", url, "--site", "bench", "--bridge-id", f"b{index}", "--buffer", "1000000", "-q",
            "--max-bytes", "8G", "--drain", "30"] + [a for ep in endpoints for a in ("--endpoint", ep)]
    return subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env=env)


def phase_nats(n: int, rate: float, duration: float, server: tuple[str, int], bridges: int,
               code: Path | None) -> dict:
    """`bridges` bridge processes, each reading every bridges-th endpoint; `code`: a folder holding another
    `edge/` to run the bridges from (the baseline), None for this checkout's."""
    endpoints = free_endpoints(n)
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code), env.get("PYTHONPATH", "")]))
    url, server_pid = server
    procs = [start_bridge(url, endpoints[i::bridges], i, env) for i in range(bridges)]
    time.sleep(1.0)
    tally = Tally()
    server_cpu, own_cpu = cpu_s(server_pid), time.process_time()
    nodes = start_nodes(endpoints, rate, duration)
    asyncio.run(consume_nats(url, nodes, tally, idle_s=3.0))
    cpu = sum(cpu_s(b.pid) for b in procs)
    server_cpu, own_cpu = cpu_s(server_pid) - server_cpu, time.process_time() - own_cpu
    for b in procs:  # SIGINT under the profiler: KeyboardInterrupt unwinds through cProfile, which writes it
        b.send_signal(2) if PROFILE else b.terminate()
    for b in procs:
        err = b.communicate(timeout=60)[1]
        if b.returncode not in (130, 143):
            print(f"bridge exited {b.returncode}: {err[-500:]}", file=sys.stderr)
    sent_text, nodes_cpu = nodes.communicate()[0].split()[-2:]
    sent = int(sent_text)
    name = "nats-jetstream" + ("" if code is None else f" ({code.name})") + (f" x{bridges}" if bridges > 1 else "")
    row = summary(name, tally, sent, duration)
    per_msg = {"bridge": cpu, "nats_server": server_cpu, "consumer": own_cpu, "nodes": float(nodes_cpu)}
    row.update(bridges=bridges, bridge_cpu_us_per_msg=round(cpu / max(sent, 1) * 1e6, 1),
               cpu_us_per_msg={k: round(v / max(sent, 1) * 1e6, 1) for k, v in per_msg.items()})
    return row


def export_ref(ref: str, into: Path) -> Path:
    """`edge/` as it is at git `ref`, in a folder named after the ref (read-only git: `git archive`)."""
    root = Path(__file__).resolve().parent.parent
    folder = into / ref.replace("/", "_")
    folder.mkdir()
    archive = subprocess.run(["git", "-C", str(root), "archive", ref, "edge"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def run_case(n: int, rate: float, duration: float, bridges: list[int], baseline: Path | None) -> list[dict]:
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    rows = []
    with tempfile.TemporaryDirectory() as store:
        port = free_port()
        server = subprocess.Popen([binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", store],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        broker = (f"nats://127.0.0.1:{port}", server.pid)
        try:
            time.sleep(0.5)
            rows.append(phase_zmq(n, rate, duration))
            for k in bridges:  # the baseline first: the current code then meets the fuller stream
                if baseline is not None:
                    rows.append(phase_nats(n, rate, duration, broker, k, baseline))
                rows.append(phase_nats(n, rate, duration, broker, k, None))
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
    p.add_argument("--bridges", type=int, action="append", help="bridge processes sharing the nodes (repeat; "
                   "default 1)")
    p.add_argument("--baseline-ref", metavar="REF", help="also run the bridge from git REF's edge/ (e.g. HEAD)")
    p.add_argument("--out", type=Path, help="also write the rows as JSON")
    args = p.parse_args()
    if args.role == "nodes":
        run_nodes(args.endpoints.split(","), args.rate[0], args.duration)
        return
    cases = list(zip(args.nodes or [64, 200], args.rate or [2.0, 100.0], strict=True))
    with tempfile.TemporaryDirectory() as tmp:
        baseline = export_ref(args.baseline_ref, Path(tmp)) if args.baseline_ref else None
        rows = [row for n, rate in cases for row in run_case(n, rate, args.duration, args.bridges or [1], baseline)]
    for row in rows:
        print(json.dumps(row), flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
