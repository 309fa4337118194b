"""qamoe-live end to end: real GRID clips replayed through capture, features, ASR, windows, the ORT backend
and a real ZeroMQ socket read by a real subscriber."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edge.publish import validate
from tests.live_fixtures import GRID, REPO, Collector, free_endpoint, make_live_engines

pytestmark = pytest.mark.slow
CLIP = GRID / "id2_vcd_swwp2s.mpg"  # "set white with p two soon"


@pytest.fixture(scope="module")
def engines(tmp_path_factory) -> Path:
    return make_live_engines(tmp_path_factory.mktemp("live"))


def _live(engines: Path, endpoint: str, *args: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "edge.cli.live", "--engines-dir", str(engines), "--endpoint", endpoint, *args]
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _need_grid() -> None:
    if not CLIP.exists():
        pytest.skip(f"{CLIP} not found: the GRID clips live in ../shared/media/grid")


@pytest.mark.parametrize("mode", ["--fast", "realtime"])
def test_replay_publishes_valid_gap_free_messages(engines: Path, mode: str) -> None:
    _need_grid()
    endpoint = free_endpoint()
    sub = Collector(endpoint)
    args = ["--video-file", str(CLIP)] + ([mode] if mode.startswith("--") else [])
    time.sleep(0.2)
    proc = _live(engines, endpoint, *args)
    out, err = proc.communicate(timeout=120)
    msgs = sub.stop()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    for topic, body in msgs:
        validate(topic, body)  # every message against its JSON Schema
    sentiment = sub.of("sentiment")
    assert len(sentiment) >= 4  # a 3 s clip, a window every 0.5 s from 0.5 s on
    for topic in {t for t, _ in msgs}:
        seqs = [b["seq"] for t, b in msgs if t == topic]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"{topic}: gaps in {seqs}"
    assert all(np.isfinite(b["valence"]) and b["valid"] for b in sentiment)
    assert all(b["modalities"]["vision"]["present"] for b in sentiment)
    words = " ".join(w["text"] for b in sub.of("transcript") for w in b["words"]).lower()
    hits = [w for w in ("set", "white", "with", "soon") if re.search(rf"\b{w}\b", words)]
    assert len(hits) >= 3, words


def test_fast_replay_is_deterministic(engines: Path) -> None:
    _need_grid()
    runs = []
    for _ in range(2):
        endpoint = free_endpoint()
        sub = Collector(endpoint)
        time.sleep(0.2)
        proc = _live(engines, endpoint, "--video-file", str(CLIP), "--fast")
        proc.communicate(timeout=120)
        runs.append([(b["valence"], b["transcript"]) for b in sub.stop() and sub.of("sentiment")])
    assert runs[0] == runs[1] and runs[0]


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_within_two_seconds(engines: Path, sig: int, code: int) -> None:
    _need_grid()
    endpoint = free_endpoint()
    sub = Collector(endpoint)
    proc = _live(engines, endpoint, "--video-file", str(CLIP))
    deadline = time.monotonic() + 60
    while not sub.of("sentiment") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sub.of("sentiment"), "no window published"
    t0 = time.monotonic()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=10)
    elapsed = time.monotonic() - t0
    sub.stop(0)
    assert proc.returncode == code, err
    assert elapsed < 2.0, f"took {elapsed:.2f} s to stop"
    assert "Traceback" not in err


# Bad arguments, sources and engines (exit code, one line naming the fix, nothing half-written): the catalogue
# in tests/test_bad_input.py.


def test_port_in_use(engines: Path) -> None:
    _need_grid()
    import zmq

    ctx = zmq.Context()
    blocker = ctx.socket(zmq.PUB)
    endpoint = free_endpoint()
    blocker.bind(endpoint)
    try:
        proc = _live(engines, endpoint, "--video-file", str(CLIP), "--fast")
        _, err = proc.communicate(timeout=60)
    finally:
        blocker.close(0)
        ctx.term()
    assert proc.returncode == 5, err
    assert "Traceback" not in err and endpoint.rsplit(":", 1)[1] in err
