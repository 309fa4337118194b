"""qamoe-record and qamoe-plot end to end: a real `qamoe-live --fast` replay of a real GRID clip recorded by a
real `qamoe-record` process (checked against an in-process `Recorder` on the same stream), exported to Parquet
and read back, plotted; `qamoe-plot --replay`; and a recorder killed with SIGKILL while a real publisher sends
thousands of messages a second, which must leave every earlier file whole."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from edge.cli.liverun import LiveCommand, LiveRun
from edge.publish import Publisher, PublisherConfig
from edge.publish.examples import example_sentiment
from edge.record import GAPS_FILE, read_recording
from edge.record.plot import AXES, build_figure
from edge.record.timeline import build_timeline
from tests.support.live_fixtures import GRID, free_endpoint, make_live_engines

pytestmark = pytest.mark.slow
CLIP = GRID / "id2_vcd_swwp2s.mpg"  # "set white with p two soon"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def engines(tmp_path_factory) -> Path:
    if not CLIP.exists():
        pytest.skip(f"{CLIP} not found: the GRID clips live in ../shared/media/grid")
    return make_live_engines(tmp_path_factory.mktemp("record"))


def _run(*argv: str | Path, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout_s, check=False)


class RecordProcess:
    """`qamoe-record` as a subprocess; started, it has printed its first line (it is connected)."""

    def __init__(self, directory: Path, endpoint: str, *args: str) -> None:
        argv = [str(BIN / "qamoe-record"), str(directory), "--endpoint", endpoint, *args]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        first = self.proc.stderr.readline()
        assert first.startswith("qamoe-record: recording"), first + self.proc.stderr.read()

    def stop(self, sig: int = signal.SIGINT) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        _, err = self.proc.communicate(timeout=10)
        return self.proc.returncode, err


def test_every_published_seq_is_recorded_exported_and_plotted(engines: Path, tmp_path: Path) -> None:
    endpoint, rec_dir = free_endpoint(), tmp_path / "rec"
    recorder = RecordProcess(rec_dir, endpoint, "--rotate-mb", "0.002")  # ~2 kB files: rotation in a real run
    command = LiveCommand(("--video-file", str(CLIP), "--fast"), engines_dir=engines, endpoint=endpoint)
    with LiveRun(command, record=True) as run:  # and an in-process Recorder on the same stream
        outcome = run.finish(120)
    code, err = recorder.stop(signal.SIGINT)
    assert outcome.exit_code == 0, outcome.stderr
    assert code == 130 and "Traceback" not in err, err
    recording = read_recording(rec_dir)
    assert recording.torn == [] and len(recording.files) >= 3
    for topic in {t for t, _ in outcome.messages}:
        recorded = [r.payload["seq"] for r in recording.records if r.topic == topic]
        reference = [b["seq"] for t, b in outcome.messages if t == topic]
        assert recorded == list(range(len(recorded))), f"{topic}: {recorded}"  # from 0, no gap
        assert set(reference) <= set(recorded), (topic, reference, recorded)
    sentiment = {b["seq"]: b for b in outcome.of("sentiment")}
    assert len(sentiment) >= 4 and {r.payload["seq"]: r.payload for r in recording.of("sentiment")} == sentiment
    index = json.loads((rec_dir / GAPS_FILE).read_text())
    (run_index,) = index["runs"].values()
    assert run_index["closed"] and run_index["missing"] == 0 and run_index["written"] == len(recording.records)

    # export: one row per window, the values as published
    out = tmp_path / "windows.parquet"
    done = _run(BIN / "qamoe-record", "export", rec_dir, out)
    assert done.returncode == 0, done.stderr
    rows = pq.read_table(out).to_pylist()
    assert len(rows) == len(recording.of("sentiment"))
    for row in rows:
        body = sentiment[row["seq"]]
        assert row["valence"] == body["valence"] and row["polarity"] == body["polarity"]
        assert row["reliability_vision"] == body["modalities"]["vision"]["reliability"]
        assert row["window_end_mono_ns"] == body["window"]["end"]["mono_ns"] and row["backend"] == body["backend"]
    assert " ".join(r["transcript"] for r in rows).strip()  # the words reached the windows

    # plot: the real recording's figure has the expected shape, and the command writes a PNG
    fig = build_figure(build_timeline(recording))
    assert [ax.get_gid() for ax in fig.axes] == list(AXES)
    valence = next(line for line in fig.axes[0].lines if line.get_gid() == "valence")
    assert list(valence.get_ydata()) == [sentiment[s]["valence"] for s in sorted(sentiment)]
    assert [t.get_text() for t in fig.axes[2].texts if t.get_gid() == "word"]
    png = tmp_path / "timeline.png"
    done = _run(BIN / "qamoe-plot", rec_dir, "-o", png)
    assert done.returncode == 0 and png.read_bytes()[:4] == b"\x89PNG", done.stderr


def test_plot_replay_runs_qamoe_live_records_and_plots(engines: Path, tmp_path: Path) -> None:
    png, rec_dir = tmp_path / "t.png", tmp_path / "kept"
    done = _run(BIN / "qamoe-plot", "--replay", CLIP, "--engines-dir", engines, "--record-dir", rec_dir, "-o", png,
                timeout_s=120)
    assert done.returncode == 0, done.stderr
    assert png.read_bytes()[:4] == b"\x89PNG"
    seqs = [r.payload["seq"] for r in read_recording(rec_dir).of("sentiment")]
    assert len(seqs) >= 4 and seqs == list(range(len(seqs)))
    # qamoe-live's own failure comes back with its code and its one line
    # (a PNG is no video: qamoe-live exits 3)
    bad = _run(BIN / "qamoe-plot", "--replay", png, "--engines-dir", engines, "-o", tmp_path / "u.png", timeout_s=120)
    assert bad.returncode == 3 and bad.stderr.startswith("qamoe-plot: qamoe-live exited 3"), bad.stderr


def _publish(endpoint: str, stop: threading.Event, limit: int | None = None) -> int:
    """Publish sentiment messages (about 5-10 thousand a second: fast, yet within what a recorder takes on a
    busy 2-core machine, so that the stream has no gap of its own) until `stop`; returns how many."""
    n = 0
    with Publisher(PublisherConfig(endpoint=endpoint, validate_messages=False, send_hwm=10_000)) as pub:
        pub.wait_for_subscribers(1, 10)
        while not stop.is_set() and (limit is None or n < limit):
            pub.publish(example_sentiment(valence=(n % 60) / 10 - 3, transcript="x" * (n % 300)))
            n += 1
            if n % 10 == 0:
                time.sleep(0.001)
        pub.flush()
    return n


def test_sigkill_mid_stream_leaves_every_earlier_file_whole(tmp_path: Path) -> None:
    endpoint, rec_dir = free_endpoint(), tmp_path / "rec"
    stop, published = threading.Event(), []
    sender = threading.Thread(target=lambda: published.append(_publish(endpoint, stop)), daemon=True)
    sender.start()
    recorder = RecordProcess(rec_dir, endpoint, "--rotate-mb", "0.01")  # ~10 kB files
    deadline = time.monotonic() + 20
    while len(list(rec_dir.glob("*.jsonl"))) < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    recorder.proc.kill()  # SIGKILL: no handler, no close, no flush beyond what each line did
    code, _ = recorder.stop()
    stop.set()
    sender.join(10)
    assert code == -signal.SIGKILL
    files = sorted(rec_dir.glob("*.jsonl"))
    assert len(files) >= 6
    recording = read_recording(rec_dir)  # raises on any bad line except a torn last one
    assert all(t.startswith(f"{files[-1]}:") for t in recording.torn) and len(recording.torn) <= 1
    for f in files[:-1]:  # every closed file: whole lines only, each a record
        data = f.read_bytes()
        assert data.endswith(b"\n") and len(read_recording(f).records) == data.count(b"\n")
    seqs = [r.payload["seq"] for r in recording.records]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # nothing lost before the kill, in order


def test_sigkill_loses_nothing_the_recorder_had_received(tmp_path: Path) -> None:
    # Each line is flushed as it is written: killed once it has taken in everything sent (the stream went
    # quiet), the recorder's files hold every message. A writer that kept lines in a buffer would lose its tail.
    endpoint, rec_dir = free_endpoint(), tmp_path / "rec"
    sender = threading.Thread(target=_publish, args=(endpoint, threading.Event(), 300), daemon=True)
    sender.start()
    recorder = RecordProcess(rec_dir, endpoint)
    sender.join(30)
    deadline, size = time.monotonic() + 10, -1
    while time.monotonic() < deadline:  # until the files stop growing
        time.sleep(0.3)
        now = sum(f.stat().st_size for f in rec_dir.glob("*.jsonl"))
        if now == size:
            break
        size = now
    recorder.proc.kill()
    assert recorder.stop()[0] == -signal.SIGKILL
    recording = read_recording(rec_dir)
    assert [r.payload["seq"] for r in recording.records] == list(range(300)) and recording.torn == []


def test_sigterm_and_duration_end_cleanly(tmp_path: Path) -> None:
    endpoint = free_endpoint()
    stop = threading.Event()
    sender = threading.Thread(target=_publish, args=(endpoint, stop), daemon=True)
    sender.start()
    try:
        by_term = RecordProcess(tmp_path / "a", endpoint)
        time.sleep(0.5)
        code, err = by_term.stop(signal.SIGTERM)
        assert code == 143 and "missing by seq" in err, err
        timed = _run(BIN / "qamoe-record", tmp_path / "b", "--endpoint", endpoint, "--duration", "0.5")
        assert timed.returncode == 0, timed.stderr
    finally:
        stop.set()
        sender.join(10)
    for d in ("a", "b"):
        index = json.loads((tmp_path / d / GAPS_FILE).read_text())
        (run_index,) = index["runs"].values()
        recording = read_recording(tmp_path / d)
        assert run_index["closed"] and recording.torn == [] and len(recording.records) == run_index["written"] > 0
