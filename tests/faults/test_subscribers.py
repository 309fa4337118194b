"""Subscriber faults, live: the pipeline runs on a GRID clip's sound track replayed in real time and looped (the
source does not matter here; audio only keeps the CPU free), publishing on a real ZeroMQ socket.

All real: no subscriber at all; one that connects late, disconnects and reconnects; a subscriber process killed
with SIGKILL mid-stream; a subscriber that never reads (tiny receive buffers, so that it overflows within
seconds rather than minutes) next to a normal one. The promise: publishing and inference never wait for a
subscriber, a subscriber that keeps up loses nothing whatever the others do, every overflow is counted in
health, and a (re)connecting subscriber gets fresh data at once."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from edge.sources import ReplayConfig, parse_mic
from tests.faults.harness import NS, Live, check_stream, lost, now_ns, sent_ns
from tests.support.live_fixtures import REPO, Collector

pytestmark = [pytest.mark.slow, pytest.mark.shared]

LOOP = ReplayConfig(realtime=True, loop=True)


def _live(comps, clip: Path, **kw) -> Live:  # type: ignore[no-untyped-def]
    return Live(comps, None, parse_mic(str(clip)), replay=LOOP, **kw)


def _steady(bodies: list[dict]) -> float:
    """The longest time between consecutive windows (s): publishing never waited."""
    stamps = [sent_ns(b) for b in bodies]
    return float(max(np.diff(stamps))) / NS if len(stamps) > 1 else 0.0


def _first_fresh(live: Live, sub: Collector, timeout_s: float = 5.0) -> tuple[float, dict]:
    """Seconds from connect to the first message, and that message."""
    t0 = now_ns()
    got = live.wait(lambda: list(sub.messages), timeout_s, "a first message on a new subscriber")
    return (now_ns() - t0) / NS, got[0][1]


def _published(live: Live, suffix: str) -> int:
    return next(n for t, n in live.pub.stats().published.items() if t.endswith(suffix))


def test_no_subscriber_then_late_and_reconnecting_ones(comps, clip: Path, record) -> None:  # type: ignore[no-untyped-def]
    with _live(comps, clip, subscribe=False) as live:
        # nobody listens: published into the void, nothing waits, nothing counts as lost. Wait on the
        # publisher's own count (not a fixed sleep: a loaded machine takes longer to go live)
        live.wait(lambda: _published(live, "sentiment") >= 3, 30, "3 windows published with nobody listening")
        before_connect = _published(live, "sentiment")
        # the socket thread may still hold the last ones: once handed to ZeroMQ, nobody connecting later gets them
        assert live.pub.flush(5.0), "the publisher's outbox did not empty"
        late = Collector(live.pub.endpoint)
        first_s, _ = _first_fresh(live, late)
        # everything before the connect is gone (not replayed): the first window it gets is a live one
        window = live.first("sentiment", lambda b: True, 0, 5, "a window", sub=late)
        health = live.first("health", lambda b: True, 0, 3, "a health message", sub=late)
        assert window["seq"] >= before_connect, (window["seq"], before_connect)
        assert health["messages"]["published"]["qamoe.v1.sentiment"] >= 3
        assert sum(health["messages"]["dropped"].values()) == 0, "nobody listening is not an overflow"
        before = late.stop(0)
        time.sleep(1.0)  # disconnected: it misses this
        again = Collector(live.pub.endpoint)
        again_s, again_first = _first_fresh(live, again)
        live.first(
            "sentiment", lambda b: True, sent_ns(again_first) + NS, 5, "windows after reconnecting", sub=again
        )
        outcome = live.stop()
        after = again.stop(0.3)
    assert first_s < 1.5 and again_s < 1.5, (first_s, again_s)
    last_before = max(b["seq"] for t, b in before if t.endswith("sentiment"))
    first_again = min(b["seq"] for t, b in after if t.endswith("sentiment"))
    assert first_again > last_before + 1  # fresh data: what was published while away is not replayed
    for msgs in (before, after):  # each connection saw a gap-free run of every topic
        for topic in {t for t, _ in msgs}:
            seqs = [b["seq"] for t, b in msgs if t == topic]
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), (topic, seqs)
    assert not outcome.thread_errors
    record.case = "subscriber_none_then_late"
    record(first_message_s=first_s, lost=0)
    record.case = "subscriber_reconnects"
    record(first_message_s=again_s, lost=0)  # gap-free while connected (asserted above)


SUBSCRIBER = """
import sys, zmq
s = zmq.Context().socket(zmq.SUB); s.setsockopt(zmq.SUBSCRIBE, b""); s.connect(sys.argv[1])
while True:
    topic, body = s.recv_multipart(); print(topic.decode(), flush=True)
"""


def test_subscriber_crashes_mid_stream(comps, clip: Path, record) -> None:  # type: ignore[no-untyped-def]
    with _live(comps, clip) as live:
        live.settle(2)
        proc = subprocess.Popen([sys.executable, "-c", SUBSCRIBER, live.pub.endpoint], cwd=REPO,
                                stdout=subprocess.PIPE, text=True)  # fmt: skip
        try:
            for _ in range(3):  # it receives
                assert proc.stdout is not None and proc.stdout.readline(), (
                    "the subscriber process got nothing"
                )
            t_crash = now_ns()
            proc.kill()  # SIGKILL mid-stream: the kernel closes its connection
        finally:
            proc.kill()
            proc.wait(5)
        live.first(
            "sentiment", lambda b: sent_ns(b) >= t_crash + 3 * NS, t_crash, 8, "3 s of windows after it"
        )
        outcome = live.stop()
    msgs = live.sub.messages
    check_stream(msgs)
    longest = _steady(live.of("sentiment", t_crash))
    record(
        lost=lost(msgs),
        longest_gap_s=longest,
        dropped=sum(live.of("health")[-1]["messages"]["dropped"].values()),
    )
    assert lost(msgs) == 0 and longest < 1.0
    assert sum(live.of("health")[-1]["messages"]["dropped"].values()) == 0
    assert not outcome.thread_errors


def _tiny_sub(ctx: zmq.Context, endpoint: str) -> zmq.Socket:
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.RCVHWM, 1)
    sock.setsockopt(zmq.RCVBUF, 1024)  # the kernel's smallest: it backs up in seconds, not minutes
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.connect(endpoint)
    return sock


def _seq(body: bytes) -> int:
    return int(body.split(b'"seq":', 1)[1].split(b",", 1)[0])


def test_slow_and_never_reading_subscribers(comps, clip: Path, record) -> None:  # type: ignore[no-untyped-def]
    """Next to a normal subscriber, two real ones that fall behind: one never reads, one reads a message every
    2 s. Their buffers fill within seconds; they stop answering the publisher's heartbeats (a ping waits behind
    the unread messages) and are cut off after ~3 s (a subscriber that reads again then finds the connection
    closed, reconnects by itself and gets fresh data). A queue that
    overflows before that is skipped for that subscriber only (counted in `messages.dropped`). Either way the
    normal subscriber loses nothing and publishing never waits; health counts the cut-offs (`subscribers`)."""
    ctx = zmq.Context()
    stop = threading.Event()
    slow_got: list[tuple[bytes, int]] = []
    try:
        with _live(comps, clip) as live:
            t_connect = now_ns()
            _tiny_sub(ctx, live.pub.endpoint)  # never reads
            slow = _tiny_sub(ctx, live.pub.endpoint)

            def read_slowly() -> None:
                while not stop.is_set():
                    if slow.poll(100):
                        topic, body = slow.recv_multipart()
                        slow_got.append((topic, _seq(body)))
                        stop.wait(2.0)

            reader = threading.Thread(target=read_slowly, daemon=True)
            reader.start()
            t0 = live.settle(2)
            cut = live.first("health", lambda b: b["queues"]["subscribers"]["dropped"] >= 2, t0, 40,
                             "health counting both slow subscribers cut off")  # fmt: skip
            live.first("sentiment", lambda b: sent_ns(b) >= sent_ns(cut) + 3 * NS, sent_ns(cut), 10,
                       "3 s more of windows")  # fmt: skip
            outcome = live.stop()
            stop.set()
            reader.join(5)
    finally:
        stop.set()
        ctx.destroy(linger=0)  # closes the test's sockets, also after an early failure
    msgs = live.sub.messages
    check_stream(msgs)  # the normal subscriber: everything, gap-free
    last = live.of("health")[-1]
    overflows, cut_offs = sum(last["messages"]["dropped"].values()), last["queues"]["subscribers"]["dropped"]
    slow_seqs = [q for t, q in slow_got if t.endswith(b"sentiment")]
    longest = _steady(live.of("sentiment", t0))
    record(detect_s=(sent_ns(cut) - t_connect) / NS, lost=lost(msgs), cut_offs=cut_offs, overflows=overflows,
           slow_reader_got=len(slow_seqs), longest_gap_s=longest)  # fmt: skip
    assert lost(msgs) == 0, "the normal subscriber lost messages to a slow one"
    assert longest < 1.0, "publishing waited for a slow subscriber"
    assert slow_seqs == sorted(set(slow_seqs))  # what it got is in order; a gap is what it missed
    assert cut_offs >= 2 or overflows > 0, (
        "both fell behind: each is cut off or overflows, and health says so"
    )
    assert not outcome.thread_errors
