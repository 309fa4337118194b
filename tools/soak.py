#!/usr/bin/env python3
"""Soak: run the real `qamoe-live` on a looped replay at real-time pace for N minutes and fail on growth.

  python tools/soak.py --minutes 2                          # what CI runs (tests/integration/test_soak.py)
  python tools/soak.py --minutes 30 --out soak-30.json      # the run docs/BENCHMARKS.md records
  python tools/soak.py --minutes 5 --video-file talk.mp4 --engines engines/

`qamoe-live --video-file F --loop` runs as a subprocess (the installed console script) with a real ZeroMQ
subscriber (edge.publish.Subscriber) reading everything it publishes. The clock starts at the first health
message (models loaded, live). Every --every seconds (default 10) a sample records: the process's RSS, thread
count and open file descriptors (/proc/PID/status, /proc/PID/fd), from the latest qamoe.v1.health message the
depth and drop count of every queue and the ASR lag (plus the largest lag since the last sample), and from the
subscriber the sentiment-message rate since the last sample and the sequence gaps seen per topic. At the end
qamoe-live gets SIGINT and must exit 130 within 10 s.

Fails (exit 1, one line naming what grew) when, with "second half" = the samples from N/2 minutes on:
  rss       the least-squares slope of the RSS floor's high-water mark (the floor: the least RSS, polled every
            second, of each sample's interval, since the ASR's decode buffers come and go by tens of MB; its
            running maximum, since a leak keeps lifting it to new highs while a dip is memory given back) over
            the second half exceeds max(2 MB/min, 10 MB / its minutes) (30 min: 2 MB/min); a run under 10 min
            mostly measures warm-up, so there only a gross leak fails: 50 MB/min (2 min: what CI can show)
  rss peak  any sample's RSS above 1200 MB
  threads   the second half's maximum exceeds the first half's maximum by more than 2
  fds       the second half's maximum exceeds the first half's maximum by more than 4
  asr lag   growing without bound: the largest lag in the last quarter exceeds max(5 s, 2 x the first
            half's p95) (it ends high: a spike that recovers is load, not growth), or the least-squares slope
            over the second half exceeds max(1 s/min, 5 s / its minutes) (it keeps rising)
  rate      any interval after the first published sentiment at under 90% of 1/hop (2 per s at the default
            0.5 s hop; windows close on the monotonic clock, so load must not slow them)
  presence  audio or vision present in under 90% of the second half's windows (the replay's timestamps must
            keep increasing across loop passes, or a pass's samples fall outside every window)
  gaps      any sequence gap on any topic at the subscriber (a lost message)
  process   qamoe-live ended before the time was up, or did not exit 130 on SIGINT
Queue drops (by policy, under load) are reported, not failed. Exit codes: 0 passed, 1 a tolerance was
exceeded, 2 bad arguments, 3 qamoe-live could not start (its error line is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from edge.cli.liverun import LiveCommand, LiveRun, LiveRunError
from edge.publish import MessageError, Subscriber, SubscriberConfig
from edge.publish.recorder import free_endpoint
from qamoe.provenance import git_commit
from tools._soak_stats import HOP_S, Sample, Tolerances, summarize, table, verdict

GRID = REPO_ROOT.parent / "shared" / "media" / "grid"
EXIT_OK, EXIT_GREW, EXIT_USAGE, EXIT_START = 0, 1, 2, 3
STDERR_TAIL = 40  # lines of qamoe-live's stderr kept for the report (--log keeps all)


# --------------------------------------------------------------------------------------------- the subscriber
@dataclass
class Tally:
    """What the subscriber thread has seen (read by the sampler under `lock`)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    last_seq: dict[str, int] = field(default_factory=dict)
    gaps: list[str] = field(default_factory=list)
    sentiment: int = 0
    invalid: int = 0
    present: dict[str, int] = field(default_factory=lambda: {"audio": 0, "vision": 0})
    health: dict[str, Any] | None = None
    lags: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))
    undecodable: int = 0
    live: threading.Event = field(default_factory=threading.Event)


def listen(endpoint: str, tally: Tally, stop: threading.Event) -> None:
    with Subscriber(SubscriberConfig(endpoint=endpoint, receive_hwm=100_000)) as sub:
        while not stop.is_set():
            try:
                msg = sub.receive(0.2)
            except MessageError:
                tally.undecodable += 1
                continue
            if msg is None:
                continue
            body = msg.payload
            with tally.lock:
                seq, last = int(body.get("seq", -1)), tally.last_seq.get(msg.topic)
                if last is not None and seq != last + 1:
                    tally.gaps.append(f"{msg.topic}: {last} -> {seq}")
                tally.last_seq[msg.topic] = seq
                if msg.topic.endswith(".sentiment"):
                    tally.sentiment += 1
                    tally.invalid += not body.get("valid", False)
                    for m in tally.present:
                        tally.present[m] += bool(body.get("modalities", {}).get(m, {}).get("present"))
                elif msg.topic.endswith(".health"):
                    tally.health = body
                    if body.get("asr_lag_s") is not None:
                        tally.lags.append(float(body["asr_lag_s"]))
                    tally.live.set()


# ------------------------------------------------------------------------------------------------ the process
def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (/proc/PID/stat fields 14 and 15, in clock ticks)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": field 3 is fields[0]
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_stats(pid: int) -> tuple[float, int, int]:
    """(RSS in MB, threads, open fds) of a live process, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.split()
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return int(fields["VmRSS"][0]) / 1024, int(fields["Threads"][0]), fds


def take_sample(pid: int, tally: Tally, t_s: float, prev: Sample | None, rss_floor: float) -> Sample:
    rss, threads, fds = proc_stats(pid)
    with tally.lock:
        health = tally.health or {}
        lags, tally.lags = list(tally.lags), deque(maxlen=10_000)
        sentiment, invalid, gaps, present = (
            tally.sentiment,
            tally.invalid,
            len(tally.gaps),
            dict(tally.present),
        )
    queues = health.get("queues", {})
    rate = None
    if prev is not None and t_s > prev.t_s:
        rate = (sentiment - prev.sentiment) / (t_s - prev.t_s)
    return Sample(
        t_s=round(t_s, 2), rss_mb=round(rss, 1), rss_floor_mb=round(min(rss, rss_floor), 1),
        threads=threads, fds=fds,
        queue_depth={k: int(q["depth"]) for k, q in queues.items()},
        queue_dropped={k: int(q["dropped"]) for k, q in queues.items()},
        asr_lag_s=health.get("asr_lag_s"), asr_lag_max_s=max(lags) if lags else None,
        sentiment=sentiment, invalid=invalid, present=present,
        rate_hz=None if rate is None else round(rate, 3), gaps=gaps,
        cpu_s=round(cpu_seconds(pid), 2), load_1m=float(Path("/proc/loadavg").read_text().split()[0]),
    )  # fmt: skip


def poll_rss_until(run: LiveRun, until: float, every_s: float = 1.0) -> float:
    """The least RSS (MB) of the run, polled every second until the monotonic time `until` (inf if none).
    The ASR's decode buffers come and go by tens of MB; a leak lifts the floor."""
    floor = float("inf")
    while run.running:
        try:
            floor = min(floor, proc_stats(run.pid)[0])
        except (OSError, KeyError, IndexError):  # the process is exiting
            break
        left = until - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(every_s, left))
    return floor


# ---------------------------------------------------------------------------------------------------- the run
def stop_live(run: LiveRun) -> int | None:
    """SIGINT, and its exit code; None when it had to be killed 10 s later."""
    try:
        return run.stop(signal.SIGINT, timeout_s=10, settle_s=0).exit_code
    except LiveRunError:
        return None


def sample_run(args: argparse.Namespace, run: LiveRun, tally: Tally) -> tuple[list[Sample], list[str]]:
    """A sample every --every seconds from the moment it is live, for --minutes; the failures seen."""
    samples: list[Sample] = []
    t0, total = time.monotonic(), args.minutes * 60
    for k in range(int(total // args.every) + 1):
        floor = poll_rss_until(run, t0 + k * args.every)
        if not run.running:
            return samples, [
                f"process: qamoe-live exited {run.returncode} after {time.monotonic() - t0:.0f} s"
            ]
        prev = samples[-1] if samples else None
        samples.append(take_sample(run.pid, tally, time.monotonic() - t0, prev, floor))
        if args.progress:
            s = samples[-1]
            print(
                f"t={s.t_s:6.0f} s rss={s.rss_mb:6.1f} MB threads={s.threads} fds={s.fds} "
                f"lag={s.asr_lag_max_s} rate={s.rate_hz} gaps={s.gaps}",
                file=sys.stderr,
                flush=True,
            )
    return samples, []


def soak(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    endpoint = args.endpoint or free_endpoint()
    tally, stop = Tally(), threading.Event()
    listener = threading.Thread(target=listen, args=(endpoint, tally, stop), name="soak-sub", daemon=True)
    listener.start()
    log = args.log.open("w") if args.log else None
    command = LiveCommand(
        ("--video-file", str(args.video_file), "--loop"), engines_dir=args.engines, endpoint=endpoint
    )
    samples: list[Sample] = []
    with LiveRun(command, on_stderr=None if log is None else log.write, tail_lines=STDERR_TAIL) as run:
        try:
            try:
                run.wait(tally.live.is_set, args.start_timeout, "a first health message")
            except LiveRunError as exc:
                why = next((ln for ln in reversed(run.stderr_lines()) if ln.startswith("qamoe-live:")), None)
                fails = [f"process: qamoe-live did not go live ({why or f'exit {exc.exit_code}'})"]
                return EXIT_START, report(args, endpoint, samples, fails, exc.exit_code, run.stderr_lines())
            samples, fails = sample_run(args, run, tally)
        finally:
            returncode = stop_live(run)
            time.sleep(0.3)
            stop.set()
            listener.join(2)
            if log is not None:
                log.close()
    if returncode != 130 and not fails:
        fails.append(f"process: qamoe-live exited {returncode} on SIGINT, not 130")
    fails += verdict(samples, args.minutes, Tolerances()) if not fails else []
    busy = [s.load_1m for s in samples if s.load_1m > (os.cpu_count() or 1)]
    if fails and busy:
        fails.append(
            f"note: machine load reached {max(busy):.1f} on {os.cpu_count()} cores: other processes may "
            "have starved qamoe-live (ASR lag first); rerun on an idle machine before reading a leak"
        )
    code = EXIT_GREW if fails else EXIT_OK
    return code, report(args, endpoint, samples, fails, returncode, run.stderr_lines())


def report(
    args: argparse.Namespace,
    endpoint: str,
    samples: list[Sample],
    fails: list[str],
    returncode: int | None,
    stderr_tail: list[str],
) -> dict[str, Any]:
    return {
        "format": "qamoe-soak", "version": 1, "git_commit": git_commit(),
        "config": {"minutes": args.minutes, "every_s": args.every, "video_file": str(args.video_file),
                   "engines": str(args.engines) if args.engines else None, "endpoint": endpoint,
                   "hop_s": HOP_S},
        "tolerances": asdict(Tolerances()),
        "passed": not fails, "failures": fails,
        "summary": summarize(samples, args.minutes) if samples else None,
        "samples": [asdict(s) for s in samples],
        "qamoe_live": {"returncode": returncode, "stderr_tail": stderr_tail[-15:]},
    }  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="soak.py",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--minutes", type=float, required=True, help="how long to run once live")
    p.add_argument(
        "--video-file",
        type=Path,
        help="any video with audio (default: the GRID clips of ../shared/media/grid, joined)",
    )
    p.add_argument("--engines", type=Path, help="engines directory for qamoe-live (default: its own)")
    p.add_argument("--out", type=Path, help="write the report (config, tolerances, samples, verdict) as JSON")
    p.add_argument("--every", type=float, default=10.0, help="seconds between samples (default 10)")
    p.add_argument("--endpoint", help="publish endpoint (default: a free loopback port)")
    p.add_argument("--start-timeout", type=float, default=120.0, help="seconds for qamoe-live to go live")
    p.add_argument("--log", type=Path, help="write qamoe-live's stderr here")
    p.add_argument("--progress", action="store_true", help="print each sample as it is taken")
    args = p.parse_args(argv)
    if not args.minutes > 0 or not args.every > 0 or args.minutes * 60 < 3 * args.every:
        p.error("--minutes and --every must be positive, with at least 4 samples (minutes * 60 >= 3 * every)")
    if args.video_file is None and not sorted(GRID.glob("*.mpg")):
        p.error(f"no --video-file and no GRID clips in {GRID}: pass a video file with an audio track")
    if args.video_file is not None and not args.video_file.is_file():
        p.error(f"--video-file {args.video_file} not found: pass a video file with an audio track")
    if not Path("/proc/self/status").exists():
        p.error("the soak reads /proc: run it on Linux")
    return args


def join_grid_clips(dst: Path) -> Path:
    """The GRID clips (MPEG-1 program streams, which concatenate byte-wise) as one ~33 s recording of 11
    different sentences. A single 3 s clip looped makes the transcript repeat verbatim, a different test (the
    ASR's prompt then repeats too)."""
    with dst.open("wb") as out:
        for clip in sorted(GRID.glob("*.mpg")):
            out.write(clip.read_bytes())
    return dst


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        if args.video_file is None:
            args.video_file = join_grid_clips(Path(tmp) / "grid-joined.mpg")
        code, rep = soak(args)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rep, indent=1) + "\n")
    if rep["summary"]:
        print(table(rep["summary"]))
    if code == EXIT_OK:
        print(f"soak: passed ({args.minutes:g} min, {rep['summary']['samples']} samples)")
    else:  # one line: what grew (or why the run could not be judged)
        print(f"soak: FAILED: {'; '.join(rep['failures'])}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
