"""Camera faults, live: a network camera (MJPEG over HTTP from a separate process, tests/faults/netcam.py)
showing a real GRID talking face, read by the real VideoSource/VideoWorker, features, ORT backend and
publisher, and checked on what a real ZeroMQ subscriber receives.

Injected for real: the camera process killed mid-stream and started again (it disappears, it comes back), and
the camera itself streaming frozen or black pictures. By decorator (no device here can do it): a capture whose
frames change resolution mid-stream (a wrapper around OpenCV's VideoCapture inside the real VideoSource)."""

from __future__ import annotations

import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.sources import CameraSource, VideoSource, parse_camera
from tests.faults.harness import (
    NS,
    Live,
    check_stream,
    device_state,
    empty_reliability,
    lost,
    now_ns,
    present,
    sent_ns,
)
from tests.support.live_fixtures import REPO, free_endpoint

pytestmark = [pytest.mark.slow, pytest.mark.shared]

WINDOW_S, LATENESS_S, HOP_S = 4.0, 0.45, 0.5
# the first window that lies wholly after a fault is published window + lateness (+ up to a hop) after it
ONE_WINDOW_S = WINDOW_S + LATENESS_S + HOP_S
SLACK_S = 1.0  # a loaded 2-core machine


class NetCam:
    """The camera process: start() (again), kill(), show(mode)."""

    def __init__(self, clip: Path) -> None:
        self.clip = clip
        self.port = int(free_endpoint().rsplit(":", 1)[1])
        self.url = f"http://127.0.0.1:{self.port}/video.mjpg"
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.netcam", "--port", str(self.port), "--clip", str(self.clip)],
            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self._line(15) == "listening", "the network camera did not start"

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(5)

    def show(self, mode: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(mode + "\n")
        self.proc.stdin.flush()
        assert self._line(5) == f"mode {mode}"

    def _line(self, timeout_s: float) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
        return self.proc.stdout.readline().strip() if ready else ""


@pytest.fixture()
def netcam(clip: Path) -> Iterator[NetCam]:
    cam = NetCam(clip)
    cam.start()
    yield cam
    if cam.proc is not None and cam.proc.poll() is None:
        cam.kill()


def _vision(b: dict) -> bool:
    return present(b, "vision")


def _outage_then_return(live: Live, fault, restore, *, health_test, expect_state: str, record) -> None:  # type: ignore[no-untyped-def]
    """Common timeline: live with a face -> fault -> detected in health and within one window -> restore ->
    back within 2 s; the stream stays gap-free and nothing is lost."""
    live.first("sentiment", _vision, 0, 30, "a window with the face present before the fault")
    t_fault = now_ns()
    fault()
    health = live.first("health", health_test, t_fault, 5, "health showing the camera fault")
    masked = live.first(
        "sentiment", lambda b: b["window"]["start"]["mono_ns"] >= t_fault + NS // 5 and not _vision(b),
        t_fault, ONE_WINDOW_S + SLACK_S + 1, "the first window wholly after the fault with vision absent",
    )  # fmt: skip
    detect_health_s, detect_window_s = (sent_ns(health) - t_fault) / NS, (sent_ns(masked) - t_fault) / NS
    assert device_state(health, "camera") == expect_state
    # the model saw no vision step at all: exactly its empty-modality reliability (the mask reached it)
    r_empty = empty_reliability(live.comps, "vision")
    assert masked["modalities"]["vision"]["reliability"] == pytest.approx(r_empty, abs=1e-4)
    assert masked["modalities"]["vision"]["reliability"] <= 0.2  # the signal is gone: it counts (almost) nothing
    during = live.of("sentiment", t_fault)
    assert all(b["valid"] for b in during), (
        "windows during the fault must stay valid (the modality is masked)"
    )
    t_back = now_ns()
    restore()
    back = live.first(
        "sentiment", _vision, t_back, 10, "a window with vision present after the camera returned"
    )
    ok = live.first("health", lambda b: device_state(b, "camera") == "ok", t_back, 10, "health ok again")
    recover_s, recover_health_s = (sent_ns(back) - t_back) / NS, (sent_ns(ok) - t_back) / NS
    outcome = live.stop()
    msgs = live.sub.messages
    counts = check_stream(msgs)
    missing = lost(msgs)
    record(detect_health_s=detect_health_s, detect_window_s=detect_window_s, recover_s=recover_s,
           recover_health_s=recover_health_s, lost=missing, windows=counts.get("qamoe.v1.sentiment"))  # fmt: skip
    assert not outcome.thread_errors
    assert missing == 0
    assert detect_window_s <= ONE_WINDOW_S + SLACK_S, detect_window_s
    assert recover_s <= 2.0, f"vision back in the stream {recover_s:.2f} s after the camera returned"
    # published every hop throughout: no stall while the camera was gone
    stamps = [sent_ns(b) for b in live.of("sentiment", t_fault)]
    assert max(np.diff(stamps)) < 1.5 * NS, "a gap of more than 1.5 s between windows"


def test_camera_disappears_mid_stream_and_comes_back(comps, netcam: NetCam, record) -> None:  # type: ignore[no-untyped-def]
    with Live(comps, parse_camera(netcam.url), None) as live:
        _outage_then_return(
            live, netcam.kill, netcam.start, record=record, expect_state="absent",
            health_test=lambda b: device_state(b, "camera") != "ok",
        )  # fmt: skip
    health = [b for b in live.of("health") if device_state(b, "camera") == "absent"]
    assert any("reconnecting" in (b["devices"]["camera"]["detail"] or "") for b in health)


def test_camera_returns_frozen_frames(comps, netcam: NetCam, record) -> None:  # type: ignore[no-untyped-def]
    with Live(comps, parse_camera(netcam.url), None) as live:
        _outage_then_return(
            live, lambda: netcam.show("freeze"), lambda: netcam.show("live"), record=record, expect_state="absent",
            health_test=lambda b: "frozen" in (b["devices"]["camera"]["detail"] or ""),
        )  # fmt: skip


def test_camera_delivers_black_frames(comps, netcam: NetCam, record) -> None:  # type: ignore[no-untyped-def]
    # the camera works (its state stays ok: that is the truth); what it shows has no face: vision is absent
    with Live(comps, parse_camera(netcam.url), None) as live:
        _outage_then_return(
            live, lambda: netcam.show("black"), lambda: netcam.show("live"), record=record, expect_state="ok",
            health_test=lambda b: device_state(b, "camera") == "ok",
        )  # fmt: skip
        assert all(device_state(b, "camera") == "ok" for b in live.of("health", live.t_start_ns + 3 * NS))


class ResizingCapture:
    """Decorator over cv2.VideoCapture: retrieve() returns the picture resized to `size` (when set), as a
    camera that renegotiates its resolution mid-stream does (OpenCV rescales MJPEG streams itself)."""

    size: tuple[int, int] | None = None

    def __init__(self, cap: cv2.VideoCapture) -> None:
        self._cap = cap

    def retrieve(self):  # type: ignore[no-untyped-def]
        ok, image = self._cap.retrieve()
        if ok and image is not None and ResizingCapture.size is not None:
            image = cv2.resize(image, ResizingCapture.size)
        return ok, image

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._cap, name)


class ResizingSource(CameraSource):  # the netcam is a stream: a live CameraSource
    def _open_capture(self) -> cv2.VideoCapture:
        return ResizingCapture(super()._open_capture())  # type: ignore[return-value]


def test_camera_changes_resolution(comps, netcam: NetCam, record) -> None:  # type: ignore[no-untyped-def]
    ResizingCapture.size = None

    def wrap(source: VideoSource) -> VideoSource:
        return ResizingSource(source.config)

    with Live(comps, parse_camera(netcam.url), None, wrap_video=wrap) as live:
        live.first("sentiment", _vision, 0, 30, "a window with the face present")
        source = live.runtime.video.source
        t_change = now_ns()
        for size in ((640, 480), (180, 144)):  # larger, then smaller than the camera's 360x288
            ResizingCapture.size = size
            live.wait(lambda s=size: source.stats.size == s, 5, f"frames at {size}")
            time.sleep(1.0)
        ResizingCapture.size = None
        live.first("sentiment", lambda b: b["window"]["start"]["mono_ns"] >= t_change, t_change, ONE_WINDOW_S + 2,
                   "a window wholly after the first change")  # fmt: skip
        outcome = live.stop()
    msgs = live.sub.messages
    check_stream(msgs)
    after = live.of("sentiment", t_change)
    record(lost=lost(msgs), resolution_changes=source.stats.resolution_changes, windows_after=len(after))
    assert not outcome.thread_errors and lost(msgs) == 0
    assert source.stats.resolution_changes >= 2
    assert all(b["valid"] for b in after)
    # the face is still found at every size: vision stays present, the camera stays ok
    assert all(_vision(b) for b in after), [_vision(b) for b in after]
    assert all(device_state(b, "camera") == "ok" for b in live.of("health", t_change))
