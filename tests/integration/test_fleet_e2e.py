"""End to end (issue 17): 8 `qamoe-live --fast --nats` replays of 8 different GRID clips (real engines, real
ZeroMQ, each with its in-process bridge) -> one JetStream stream -> one durable consumer, which must receive
every published seq of every node exactly once: compared with what a direct ZeroMQ subscriber of each node saw.
Four replays run at a time (2 cores); ~20 s in all on 2 cores."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from edge.cli.liverun import LiveCommand, LiveOutcome, LiveRun
from tests.support.fleet import drain_durable
from tests.support.live_fixtures import GRID, free_endpoint
from tests.support.nats import NatsServer

pytestmark = pytest.mark.slow
NODES = 8
AT_ONCE = 4


def _clips() -> list[Path]:
    clips = sorted(GRID.glob("*.mpg"))[:NODES]
    if len(clips) < NODES:
        pytest.skip(f"{NODES} GRID clips needed in {GRID} (../shared/media/grid), found {len(clips)}")
    return clips


def _replays(engines: Path, url: str, clips: list[Path]) -> list[LiveOutcome]:
    runs = [LiveRun(LiveCommand(("--video-file", str(clip), "--fast", "--nats", url, "--site", "lab",
                                 "--source-id", f"room-{i}"), engines_dir=engines, endpoint=free_endpoint()),
                    record=True) for i, clip in enumerate(clips)]
    outcomes = []
    for start in range(0, len(runs), AT_ONCE):
        group = runs[start:start + AT_ONCE]
        for run in group:
            run.start()
        outcomes += [run.finish(180) for run in group]
    return outcomes


def test_eight_replays_reach_one_durable_consumer_exactly_once(live_engines: Path, nats_server: NatsServer) \
        -> None:
    outcomes = _replays(live_engines, nats_server.url, _clips())
    for i, out in enumerate(outcomes):
        assert out.exit_code == 0, out.stderr[-2000:]
        assert "Traceback" not in out.stderr
        assert "dropped 0, lost upstream 0, 0 still buffered" in out.stderr, out.stderr[-1500:]
    got = drain_durable(nats_server.url, "fleet")
    per_subject = Counter((subject, body["seq"]) for subject, body in got)
    assert max(per_subject.values()) == 1, "a message was delivered twice"
    for i, out in enumerate(outcomes):
        for topic in ("sentiment", "transcript"):
            subject = f"qamoe.v1.{topic}.lab.room-{i}"
            via_nats = sorted(seq for (s, seq) in per_subject if s == subject)
            direct = {b["seq"] for b in out.of(topic)}
            # every seq the node published, from 0 without a gap, and everything the direct subscriber saw
            assert via_nats == list(range(len(via_nats))), (subject, via_nats)
            assert direct <= set(via_nats), (subject, sorted(direct), via_nats)
        assert len(out.of("sentiment")) >= 4
        assert any(s == f"qamoe.v1.sentiment.lab.room-{i}" for s, _ in got)
