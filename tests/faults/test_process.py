"""Process-level faults on the real `qamoe-live` command (a subprocess, real signals, a real ZeroMQ subscriber):
the publish port held by another process; an `--out` file that cannot be written (at start, and mid-run under a
file-size limit, the way a full disk fails); SIGINT / SIGTERM / SIGHUP in the middle of a window; and the whole
process stalled for 3 s (SIGSTOP/SIGCONT: CPU starvation) while a live microphone keeps delivering, which
overflows its buffers. Fatal faults: a one-line reason, a documented exit code, nothing half-written left."""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from edge.cli.liverun import LiveCommand, LiveRun, run_to_end
from tests.faults.harness import NS, check_stream, lost, now_ns, present, sent_ns
from tests.faults.pulse_ctl import PrivateMic
from tests.support.live_fixtures import free_endpoint

pytestmark = [pytest.mark.slow, pytest.mark.shared]

LIVE_TIMEOUT_S = 60.0  # model loading on a loaded 2-core machine


def _live(engines: Path, endpoint: str, *args: str, **options) -> LiveCommand:  # type: ignore[no-untyped-def]
    return LiveCommand(args, engines_dir=engines, endpoint=endpoint, **options)


def _one_line_error(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("qamoe-live:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


HOLDER = """
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(); print("bound", flush=True); time.sleep(600)
"""


def test_publish_port_already_in_use(engines: Path, clip: Path, record) -> None:  # type: ignore[no-untyped-def]
    endpoint = free_endpoint()
    port = endpoint.rsplit(":", 1)[1]
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, port], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "bound"
        t0 = time.monotonic()
        run = run_to_end(_live(engines, endpoint, "--video-file", str(clip)), LIVE_TIMEOUT_S)
        took = time.monotonic() - t0
        assert holder.poll() is None, "the process holding the port was disturbed"
    finally:
        holder.kill()
        holder.wait(5)
    err = run.stderr
    line = _one_line_error(err)
    record(exit_code=run.exit_code, exit_after_s=took, lost=0)
    assert run.exit_code == 5, err
    assert f"port {port} is already in use" in line and "--endpoint" in line


@pytest.mark.parametrize("where", ["missing-dir", "parent-is-a-file"])
def test_out_file_cannot_be_written_at_start(
    engines: Path, clip: Path, tmp_path: Path, where: str, record
) -> None:  # type: ignore[no-untyped-def]
    if where == "missing-dir":
        out = tmp_path / "no" / "such" / "dir" / "out.mp4"
    else:
        (tmp_path / "file").write_text("")
        out = tmp_path / "file" / "out.mp4"
    t0 = time.monotonic()
    run = run_to_end(
        _live(engines, free_endpoint(), "--video-file", str(clip), "--out", str(out)), LIVE_TIMEOUT_S
    )
    record(exit_code=run.exit_code, exit_after_s=time.monotonic() - t0)
    err = run.stderr
    line = _one_line_error(err)
    assert run.exit_code == 6, err
    assert str(out) in line and "--out" in line
    assert sorted(p.name for p in tmp_path.rglob("*")) == ([] if where == "missing-dir" else ["file"])


def test_out_file_fails_mid_run(engines: Path, clip: Path, tmp_path: Path, record) -> None:  # type: ignore[no-untyped-def]
    # a file-size limit (RLIMIT_FSIZE) makes the writes fail part-way, as a full disk does; OpenCV's writer does
    # not report it, the check before the rename does. The windows are published regardless.
    out = tmp_path / "out.mp4"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))

    command = _live(
        engines, free_endpoint(), "--video-file", str(clip), "--fast", "--out", str(out), preexec=limit
    )
    run = run_to_end(command, LIVE_TIMEOUT_S, record=True)
    msgs, err = run.messages, run.stderr
    line = _one_line_error(err)
    sentiment = [b for t, b in msgs if t.endswith("sentiment")]
    record(exit_code=run.exit_code, windows=len(sentiment), lost=lost(msgs))
    assert run.exit_code == 6, err
    assert "out.mp4" in line and "nothing was written" in line
    assert list(tmp_path.iterdir()) == [], "a half-written file was left behind"
    check_stream(msgs)
    assert len(sentiment) >= 4 and all(b["valid"] for b in sentiment)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_signal_mid_window(engines: Path, clip: Path, tmp_path: Path, sig: int, code: int, record) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "annotated.mp4"
    with LiveRun(
        _live(engines, free_endpoint(), "--video-file", str(clip), "--out", str(out)), record=True
    ) as run:
        first = run.wait(lambda: run.of("sentiment"), LIVE_TIMEOUT_S, "a first window")
        # mid-window: a quarter hop after a window was published (the next one is half-way through its lateness)
        n = len(first)
        run.wait(lambda: len(run.of("sentiment")) > n, 5, "the next window")
        time.sleep(0.125)
        outcome = run.stop(sig, timeout_s=10)
    msgs, err, took = outcome.messages, outcome.stderr, outcome.stop_s
    check_stream(msgs)
    record(exit_code=outcome.exit_code, stop_s=took, lost=lost(msgs))
    assert outcome.exit_code == code, err
    assert took is not None and took < 2.0, f"took {took} s to stop"
    assert "Traceback" not in err
    assert all(b["valid"] for t, b in msgs if t.endswith("sentiment"))
    # the recording ends with the signal: complete, playable, nothing else left
    assert [p.name for p in tmp_path.iterdir()] == ["annotated.mp4"]
    with av.open(str(out)) as container:
        assert container.streams.video[0].frames >= 10


@pytest.fixture(scope="module")
def mic(mic_env: PrivateMic) -> PrivateMic:
    return mic_env


def mic_loss(health: dict) -> int:
    """Microphone samples counted lost so far in a health bulletin: our ring's drops plus the device's gaps."""
    q = health["queues"]
    return int(q["microphone_device"]["dropped"] + q["microphone_gaps"]["dropped"])


def test_process_stalled_microphone_overflows(engines: Path, mic: PrivateMic, record) -> None:  # type: ignore[no-untyped-def]
    command = _live(engines, free_endpoint(), "--camera", "none", "--mic", "pulse")  # PULSE_* from mic_env
    with LiveRun(command, record=True) as run:
        run.wait(lambda: len(run.of("sentiment")) >= 2 and run.of("health"), LIVE_TIMEOUT_S, "going live")
        # loss counted before the stall (a start-up xrun on a loaded machine): the stall's loss comes on top.
        # CI once took the first bulletin after SIGCONT that showed any loss, 537 samples from before the
        # stall, 0.01 s after SIGCONT and before the callback had seen the gap.
        before = mic_loss(run.of("health")[-1])
        run.send_signal(signal.SIGSTOP)  # starved: nothing of it runs, the microphone keeps delivering
        t_stop = now_ns()
        time.sleep(3.0)
        run.send_signal(signal.SIGCONT)
        t_cont = now_ns()

        def counted() -> dict | None:
            for b in run.of("health"):
                if sent_ns(b) > t_cont and mic_loss(b) - before >= 2.0 * 16_000:
                    return b
            return None

        # what the 3 s stall cost the microphone, counted in samples (16 kHz): about the whole stall
        health = run.wait(counted, 5, "health counting >= 2 s of the microphone's samples lost in the stall")
        resumed = run.wait(lambda: [b for b in run.of("sentiment") if sent_ns(b) > t_cont + 2 * NS], 10,
                           "windows after the stall")  # fmt: skip
        outcome = run.stop(signal.SIGINT, timeout_s=10)
    msgs, err = outcome.messages, outcome.stderr
    counts = check_stream(msgs)  # the windows due during the stall were published at once, in order
    q = health["queues"]
    stalled = [
        b for t, b in msgs if t.endswith("sentiment") and t_stop <= b["window"]["end"]["mono_ns"] <= t_cont
    ]
    record(detect_health_s=(sent_ns(health) - t_cont) / NS, lost=lost(msgs),
           ring_dropped_samples=q["microphone_device"]["dropped"], gap_samples=q["microphone_gaps"]["dropped"],
           windows_in_stall=len(stalled), stall_loss_samples=mic_loss(health) - before)  # fmt: skip
    assert outcome.exit_code == 130, err
    assert "Traceback" not in err and lost(msgs) == 0
    assert len(stalled) >= 4, "the windows that fell due during the stall must still be published"
    assert all(b["valid"] for t, b in msgs if t.endswith("sentiment"))
    assert present(resumed[-1], "audio")
    stall_s = (t_cont - t_stop) / NS
    assert mic_loss(health) - before <= (stall_s + 1.0) * 16_000, f"more lost than the {stall_s:.2f} s stall"
    assert counts["qamoe.v1.sentiment"] >= 10
