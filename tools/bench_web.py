#!/usr/bin/env python3
"""Load on the web view (issue 18): 20 WebSocket viewers on one node, in one run.

  python tools/bench_web.py                        # ~2 min: GRID clip looped at real time, shipped model
  python tools/bench_web.py --viewers 20 --phase-s 30 --json out.json

One real-time `qamoe-live --video-file CLIP --loop` replay, one `qamoe-web` subscribed to it, a plain ZeroMQ
subscriber (the recorder) beside it, and three phases of `--phase-s` each: no viewers, `--viewers` WebSocket
clients connected and reading everything, no viewers again. Per phase:
  node      close_to_publish latency of each window (measured inside qamoe-live: window due -> handed to the
            socket) p50/p95, and the recorder's delivery (sent -> received, same monotonic clock) p50/p95;
            qamoe-live's CPU (% of one core)
  server    qamoe-web's CPU (% of one core) and RSS (now and peak)
  viewers   messages each received, delivery (message sent -> viewer received, wall clock) p50/p95, updates
            the server dropped for them (slow viewers) and resyncs
The ratio of the node's latency with viewers to without (both no-viewer phases) is the headline. The viewers
run in this process, on the same cores as the node and the server: 20 browsers elsewhere would cost the node
less, not more."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Self

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from edge.cli.liverun import LiveCommand, LiveRun
from edge.cli.webrun import WebCommand, WebRun
from edge.publish.recorder import free_endpoint

CLIP = REPO.parent / "shared" / "media" / "grid" / "id2_vcd_swwp2s.mpg"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def rss_mb(pid: int) -> dict[str, float]:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024
    return out


def pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 2) if values else None


class Viewers:
    """`n` WebSocket clients on a thread of their own, reading everything; records (receive wall time,
    message) per client while `recording`."""

    def __init__(self, url: str, n: int) -> None:
        self.url, self.n = url, n
        self.delays_ms: list[float] = []
        self.counts = [0] * n
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    async def _main(self) -> None:
        from websockets.asyncio.client import connect

        async def one(i: int) -> None:
            async with connect(self.url) as ws:
                while not self._stop.is_set():
                    try:
                        text = await asyncio.wait_for(ws.recv(), 0.5)
                    except TimeoutError:
                        continue
                    now = time.time()
                    msg = json.loads(text)
                    self.counts[i] += 1
                    if msg.get("sent") is not None:
                        self.delays_ms.append((now - msg["sent"]) * 1000)

        await asyncio.gather(*(one(i) for i in range(self.n)))


def phase(run: LiveRun, web: WebRun, seconds: float, viewers: Viewers | None) -> dict[str, Any]:
    node_pid, web_pid = run.pid, web.pid
    n0 = len(run.messages)
    c0, w0, t0 = cpu_s(node_pid), cpu_s(web_pid), time.monotonic()
    v0 = time.process_time()
    time.sleep(seconds)
    wall = time.monotonic() - t0
    c1, w1 = cpu_s(node_pid), cpu_s(web_pid)
    v1 = time.process_time()
    msgs = run.messages[n0:]
    arrivals = run.recorder.arrivals[n0 : n0 + len(msgs)] if run.recorder else []
    windows = [b for t, b in msgs if t.endswith("sentiment")]
    close = [
        b["latency_ms"]["close_to_publish"]
        for b in windows
        if b["latency_ms"].get("close_to_publish") is not None
    ]
    delivery = [(a - b["sent"]["mono_ns"]) / 1e6 for (_, b), a in zip(msgs, arrivals, strict=False)]
    health = [b for t, b in msgs if t.endswith("health")]
    out: dict[str, Any] = {
        "seconds": round(wall, 1),
        "windows": len(windows),
        "node_close_to_publish_ms": {"p50": pct(close, 50), "p95": pct(close, 95), "max": pct(close, 100)},
        "node_to_subscriber_ms": {"p50": pct(delivery, 50), "p95": pct(delivery, 95)},
        "node_cpu_pct": round(100 * (c1 - c0) / wall, 1),
        "node_dropped": health[-1]["messages"]["dropped"] if health else None,
        "server_cpu_pct": round(100 * (w1 - w0) / wall, 1),
        "server_rss_mb": {k: round(v, 1) for k, v in rss_mb(web_pid).items()},
        "bench_process_cpu_pct": round(100 * (v1 - v0) / wall, 1),  # the recorder, and the viewers if any
    }
    if viewers is not None:
        out["viewer_messages_each"] = [min(viewers.counts), max(viewers.counts)]
        out["viewer_delivery_ms"] = {"p50": pct(viewers.delays_ms, 50), "p95": pct(viewers.delays_ms, 95)}
    return out


def server_counters(web: WebRun) -> dict[str, Any]:
    """The server's own counters, from a snapshot as a fresh viewer gets it."""
    from websockets.sync.client import connect

    with connect(web.url.replace("http://", "ws://").replace("/?", "/ws?")) as ws:
        return json.loads(ws.recv(timeout=5)).get("server", {})


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    p.add_argument("--clip", type=Path, default=CLIP)
    p.add_argument("--engines-dir", type=Path, default=None, help="default: the shipped model in engines/")
    p.add_argument("--viewers", type=int, default=20)
    p.add_argument("--phase-s", type=float, default=30.0)
    p.add_argument("--warmup-s", type=float, default=8.0)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    if not args.clip.is_file():
        print(
            f"bench_web: {args.clip} not found (the GRID clips live in ../shared/media/grid)", file=sys.stderr
        )
        return 2
    endpoint = free_endpoint()
    live = LiveCommand(
        ("--video-file", str(args.clip), "--loop"), engines_dir=args.engines_dir, endpoint=endpoint
    )
    res: dict[str, Any] = {
        "machine": machine(),
        "load_before": list(os.getloadavg()),
        "viewers": args.viewers,
    }
    with LiveRun(live, record=True) as run, WebRun(WebCommand(endpoint)) as web:
        run.wait(lambda: run.of("sentiment"), 120, "a first window")
        time.sleep(args.warmup_s)
        res["no_viewers_1"] = phase(run, web, args.phase_s, None)
        ws_url = web.url.replace("http://", "ws://").replace("/?", "/ws?")
        with Viewers(ws_url, args.viewers) as viewers:
            time.sleep(1.0)  # all connected and sent their snapshot
            res["with_viewers"] = phase(run, web, args.phase_s, viewers)
            res["server_counters"] = server_counters(web)
        time.sleep(1.0)
        res["no_viewers_2"] = phase(run, web, args.phase_s, None)
        run.stop()
        web.stop()
    res["load_after"] = list(os.getloadavg())
    report(res)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    return 0


def machine() -> dict[str, Any]:
    model = "unknown"
    out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    model = next(
        (ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), model
    )
    return {
        "arch": os.uname().machine,
        "cpu": model,
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
    }


def report(res: dict[str, Any]) -> None:
    a, b, c = res["no_viewers_1"], res["with_viewers"], res["no_viewers_2"]
    base = [x["node_close_to_publish_ms"][q] for x in (a, c) for q in ("p50", "p95")]
    print(f"machine: {res['machine']}; load {res['load_before']} -> {res['load_after']}")
    print(
        f"{'phase':<16}{'windows':>8}{'c2p p50':>9}{'c2p p95':>9}{'sub p50':>9}{'sub p95':>9}"
        f"{'node %':>8}{'web %':>7}{'web RSS':>9}{'peak':>7}"
    )
    for name, x in (("no viewers", a), (f"{res['viewers']} viewers", b), ("no viewers", c)):
        ms, sub, rss = x["node_close_to_publish_ms"], x["node_to_subscriber_ms"], x["server_rss_mb"]
        print(
            f"{name:<16}{x['windows']:>8}{ms['p50']:>9}{ms['p95']:>9}{sub['p50']:>9}{sub['p95']:>9}"
            f"{x['node_cpu_pct']:>8}{x['server_cpu_pct']:>7}{rss['VmRSS']:>9}{rss['VmHWM']:>7}"
        )
    if None not in base and b["node_close_to_publish_ms"]["p50"] is not None:
        r50 = b["node_close_to_publish_ms"]["p50"] / ((base[0] + base[2]) / 2)
        r95 = b["node_close_to_publish_ms"]["p95"] / ((base[1] + base[3]) / 2)
        res["ratio_with_to_without"] = {"p50": round(r50, 2), "p95": round(r95, 2)}
        print(f"node close->publish, with / without viewers: p50 x{r50:.2f}, p95 x{r95:.2f}")
    print(
        f"this process (recorder + viewers): {a['bench_process_cpu_pct']} / {b['bench_process_cpu_pct']} / "
        f"{c['bench_process_cpu_pct']} % of a core"
    )
    print(
        f"viewers: messages each {b['viewer_messages_each']}, delivery {b['viewer_delivery_ms']} ms; "
        f"server counters {res['server_counters']}"
    )


if __name__ == "__main__":
    sys.exit(main())
