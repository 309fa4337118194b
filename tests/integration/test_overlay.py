"""The overlay (edge.overlay), the annotated-video writer (edge.pipeline.video_out) and `qamoe-live --out`.

Unit tests draw on synthetic frames; the end-to-end ones replay a real GRID clip through the whole pipeline
(tests/support/live_fixtures engines) and read the written file back with OpenCV."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.cli.liverun import LiveCommand, LiveRun, run_to_end
from edge.overlay import MODALITIES, ModalityView, OverlayConfigError, OverlayState, draw, drawable, layout
from edge.pipeline.video_out import OutputConfigError, OutputError, VideoOut, VideoOutConfig
from edge.sources.types import ReadStatus, VideoFrame
from tests.support.live_fixtures import GRID, free_endpoint, make_live_engines

CLIP = GRID / "id2_vcd_swwp2s.mpg"
EXIT_OUTPUT = 6
NASTY = [
    "caf\u00e9 na\u00efve \u00fcber \u2018quoted\u2019 \u2014 ok\u2026",
    "\x1b[31mred\x1b[0m \x07bell\r\nnew line\ttab\x00nul\x7f",
    "\u202eevil override\u202c \u200bzero\u200dwidth \ufeffbom",
    "\u65e5\u672c\u8a9e \u0645\u0631\u062d\u0628\u0627 \U0001f600 emoji \ud800 lone surrogate",
    "word " * 2000,
    "",
]


def _frame(h: int = 288, w: int = 360, value: int = 128) -> np.ndarray:
    return np.full((h, w, 3), value, np.uint8)


def _state(valence: float | None = 1.5, **mods: ModalityView) -> OverlayState:
    views = {m: ModalityView(True, 0.5) for m in MODALITIES}
    views.update(mods)
    return OverlayState(
        valence=valence,
        variance=0.1,
        polarity="positive",
        modalities=views,
        transcript="set white with p two soon",
        backend="ort-cpu",
        fps=25.0,
        waiting=False,
    )


def _crop(img: np.ndarray, rect: tuple[int, int, int, int]) -> np.ndarray:
    x, y, w, h = rect
    return img[y : y + h, x : x + w]


# ---------------------------------------------------------------------------------------------------- draw()
@pytest.mark.parametrize(("h", "w"), [(288, 360), (480, 640)])
def test_gauge_fills_towards_the_sign_of_the_valence(h: int, w: int) -> None:
    lay = layout(h, w)
    pos, neg = (_crop(draw(_frame(h, w), _state(v)), lay.gauge) for v in (2.0, -2.0))
    assert not np.array_equal(pos, neg)
    half = pos.shape[1] // 2
    green = np.array([90, 210, 90])
    red = np.array([70, 70, 235])

    def share(img: np.ndarray, color: np.ndarray) -> tuple[int, int]:
        hit = np.all(np.abs(img.astype(int) - color) < 30, axis=2)
        return int(hit[:, :half].sum()), int(hit[:, half:].sum())

    assert share(pos, green)[1] > 0 and share(pos, green)[0] == 0  # positive: filled right of zero
    assert share(neg, red)[0] > 0 and share(neg, red)[1] == 0
    # a larger valence fills more of the gauge
    small = _crop(draw(_frame(h, w), _state(1.0)), lay.gauge)
    assert share(small, green)[1] < share(pos, green)[1]


def test_no_estimate_draws_an_empty_gauge() -> None:
    lay = layout(288, 360)
    empty = _crop(draw(_frame(), _state(None)), lay.gauge)
    some = _crop(draw(_frame(), _state(0.8)), lay.gauge)
    assert not np.array_equal(empty, some)


def test_absent_modality_bar_is_drawn_differently_from_a_present_one() -> None:
    lay = layout(288, 360)
    present_low = draw(_frame(), _state(vision=ModalityView(True, 0.0)))
    present_high = draw(_frame(), _state(vision=ModalityView(True, 0.9)))
    absent = draw(_frame(), _state(vision=ModalityView(False, None)))
    bar = lay.bars["vision"]
    assert not np.array_equal(_crop(absent, bar), _crop(present_low, bar))  # absent is not "reliability 0"
    assert not np.array_equal(_crop(present_high, bar), _crop(present_low, bar))
    # the other bars do not depend on vision
    assert np.array_equal(_crop(absent, lay.bars["text"]), _crop(present_low, lay.bars["text"]))


def test_draw_is_pure_and_keeps_the_frame_size() -> None:
    frame = _frame()
    before = frame.copy()
    out = draw(frame, _state())
    assert np.array_equal(frame, before)
    assert out.shape == frame.shape and out.dtype == np.uint8 and not np.array_equal(out, frame)
    with pytest.raises(OverlayConfigError, match="BGR uint8"):
        draw(np.zeros((10, 10), np.uint8), _state())


@pytest.mark.parametrize("text", NASTY)
def test_untrusted_transcript_draws_without_error_and_as_printable_ascii(text: str) -> None:
    out = draw(_frame(), OverlayState(transcript=text, backend=text, polarity=text, valence=0.1))
    assert out.shape == (288, 360, 3)
    clean = drawable(text, 120)
    assert all(" " <= c <= "~" for c in clean) and len(clean) <= 120
    assert "\x1b" not in clean and "\n" not in clean


def test_drawable_folds_accents_and_drops_controls() -> None:
    assert drawable("caf\u00e9 \u2018na\u00efve\u2019") == "cafe 'naive'"
    assert drawable("a\x1b[2Jb\nc\u202ed") == "a [2Jb cd"
    assert drawable("\u65e5 x") == "? x"
    assert drawable("one two three four", 9) == "...e four"


def test_state_from_an_invalid_window_keeps_presence_and_drops_numbers() -> None:
    body = {
        "valid": False,
        "valence": None,
        "polarity": None,
        "predictive_variance": None,
        "transcript": "hi",
        "backend": "ort-cpu",
        "modalities": {m: {"present": m == "text", "reliability": None} for m in MODALITIES},
    }
    s = OverlayState.from_message(body)
    assert s.valence is None and not s.waiting and s.modalities["text"].present
    assert not s.modalities["vision"].present and s.transcript == "hi"
    draw(_frame(), s)


# -------------------------------------------------------------------------------------------------- VideoOut
def _frames(n: int, h: int = 96, w: int = 128, fps: float = 20.0) -> list[VideoFrame]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        out.append(VideoFrame(ReadStatus.OK, img, 10**9 + round(i * 1e9 / fps), i + 1))
    return out


def _read_back(path: Path) -> tuple[int, tuple[int, int], float]:
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), path
    n, size = 0, None
    while True:
        ok, img = cap.read()
        if not ok:
            break
        n, size = n + 1, (img.shape[1], img.shape[0])
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    return n, size, fps


def _leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if "partial" in p.name)


def test_video_out_writes_every_frame_in_order_at_the_measured_rate(tmp_path: Path) -> None:
    out = tmp_path / "a.mp4"
    with VideoOut(VideoOutConfig(path=out)) as sink:
        for f in _frames(30) + [VideoFrame(ReadStatus.TIMEOUT, None, 0, 0)]:
            sink.offer(f)
        assert _leftovers(tmp_path) and not out.exists()  # written beside the target, renamed at the end
    assert _read_back(out) == (30, (128, 96), pytest.approx(20.0, abs=0.01))
    assert _leftovers(tmp_path) == []


def test_video_out_threaded_counts_what_it_drops(tmp_path: Path) -> None:
    out = tmp_path / "t.mp4"
    with VideoOut(VideoOutConfig(path=out, threaded=True, queue_frames=2)) as sink:
        for f in _frames(40):
            sink.offer(f)
    stats = sink.stats()
    assert stats.policy == "drop_oldest" and stats.capacity == 2
    assert sink.frames_written + stats.dropped == 40 and sink.frames_written >= 2
    assert _read_back(out)[0] == sink.frames_written


def test_video_out_keeps_the_first_resolution(tmp_path: Path) -> None:
    out = tmp_path / "r.mp4"
    with VideoOut(VideoOutConfig(path=out)) as sink:
        for f in _frames(10) + _frames(10, h=120, w=160):
            sink.offer(f)
    assert _read_back(out)[:2] == (20, (128, 96))


def test_video_out_leaves_nothing_on_error_or_without_frames(tmp_path: Path) -> None:
    out = tmp_path / "e.mp4"
    with pytest.raises(RuntimeError), VideoOut(VideoOutConfig(path=out)) as sink:
        for f in _frames(12):
            sink.offer(f)
        raise RuntimeError("the pipeline failed")
    assert not out.exists() and _leftovers(tmp_path) == []
    with VideoOut(VideoOutConfig(path=out)):
        pass
    assert not out.exists() and _leftovers(tmp_path) == []


def test_a_failing_writer_is_an_output_error_and_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    def broken(*_a: object, **_k: object) -> np.ndarray:
        raise RuntimeError("boom")

    monkeypatch.setattr("edge.pipeline.video_out.draw", broken)
    out = tmp_path / "f.mp4"
    with pytest.raises(OutputError, match="boom"), VideoOut(VideoOutConfig(path=out, threaded=True)) as sink:
        for f in _frames(5):
            sink.offer(f)  # never raises into the capture thread
    assert not out.exists() and _leftovers(tmp_path) == []


def test_video_out_rejects_bad_paths(tmp_path: Path) -> None:
    with pytest.raises(OutputConfigError, match=".mp4"):
        VideoOutConfig(path=tmp_path / "x.txt")
    with pytest.raises(OutputConfigError, match="directory"):
        VideoOutConfig(path=tmp_path)
    with (
        pytest.raises(OutputError, match="does not exist"),
        VideoOut(VideoOutConfig(path=tmp_path / "no" / "x.mp4")),
    ):
        pass


def test_preview_without_a_display_warns_once_and_goes_on(monkeypatch, caplog, tmp_path: Path) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with caplog.at_level(logging.WARNING), VideoOut(VideoOutConfig(preview=True)) as sink:
        for f in _frames(3):
            sink.offer(f)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "no display" in warnings[0]


def test_preview_on_a_headless_opencv_warns_once_and_goes_on(monkeypatch, caplog, tmp_path: Path) -> None:
    monkeypatch.setenv("DISPLAY", ":99")

    def no_gui(*_a: object) -> None:
        raise cv2.error("The function is not implemented")

    monkeypatch.setattr(cv2, "imshow", no_gui)
    out = tmp_path / "p.mp4"
    with caplog.at_level(logging.WARNING), VideoOut(VideoOutConfig(path=out, preview=True)) as sink:
        for f in _frames(10):
            sink.offer(f)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "GUI build" in warnings[0]
    assert _read_back(out)[0] == 10


# ------------------------------------------------------------------------------------------ qamoe-live --out
def _live(
    endpoint: str, *args: str, engines: Path | None = None, preexec: Callable[[], None] | None = None
) -> LiveCommand:
    return LiveCommand(args, engines_dir=engines, endpoint=endpoint, preexec=preexec)


def _need_grid() -> None:
    if not CLIP.exists():
        pytest.skip(f"{CLIP} not found: the GRID clips live in ../shared/media/grid")


def _drop_dac_override() -> None:
    """preexec_fn: root ignores directory permissions; without CAP_DAC_OVERRIDE it obeys them like anyone."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH: PR_CAPBSET_DROP then takes effect at exec
        if libc.prctl(24, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@pytest.mark.parametrize("case", ["missing-dir", "read-only-dir"])
def test_unwritable_out_exits_6_with_one_line_and_leaves_nothing(tmp_path: Path, case: str) -> None:
    _need_grid()
    target_dir = tmp_path / ("nonexistent-dir" if case == "missing-dir" else "ro")
    preexec = None
    if case == "read-only-dir":
        target_dir.mkdir()
        target_dir.chmod(0o555)
        if os.geteuid() == 0:
            preexec = _drop_dac_override
    command = _live(
        free_endpoint(), "-q", "--video-file", str(CLIP), "--fast", "--out", str(target_dir / "x.mp4"),
        preexec=preexec,
    )  # fmt: skip
    run = run_to_end(command, 60)
    err = run.stderr
    assert run.exit_code == EXIT_OUTPUT, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("qamoe-live: cannot write") and "x.mp4" in lines[0], err
    assert not target_dir.exists() or list(target_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--out", "{tmp}/x.txt"], ".mp4"),
        (["--out", str(CLIP)], "input file"),
        (["--out", "{tmp}"], "directory"),
    ],
)
def test_bad_out_is_a_usage_error(tmp_path: Path, args: list[str], needle: str) -> None:
    _need_grid()
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    run = run_to_end(_live(free_endpoint(), "-q", "--video-file", str(CLIP), "--fast", *args), 60)
    err = run.stderr
    assert run.exit_code == 2, err
    assert needle in err and len(err.strip().splitlines()) == 1 and list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def engines(tmp_path_factory) -> Path:
    return make_live_engines(tmp_path_factory.mktemp("overlay"))


@pytest.mark.slow
def test_fast_replay_writes_every_frame_with_the_overlay(engines: Path, tmp_path: Path) -> None:
    _need_grid()
    out = tmp_path / "annotated.mp4"
    run = run_to_end(
        _live(free_endpoint(), "--video-file", str(CLIP), "--fast", "--out", str(out), engines=engines), 120
    )
    err = run.stderr
    assert run.exit_code == 0, err
    assert "Traceback" not in err
    n_in, size_in, fps_in = _read_back(CLIP)
    assert _read_back(out) == (n_in, size_in, pytest.approx(fps_in, abs=0.01))
    assert _leftovers(tmp_path) == []
    # the overlay is there: the gauge region of the first frame differs from the input's
    src, dst = cv2.VideoCapture(str(CLIP)), cv2.VideoCapture(str(out))
    a, b = src.read()[1], dst.read()[1]
    gauge = layout(*size_in[::-1]).gauge
    assert np.abs(_crop(a, gauge).astype(int) - _crop(b, gauge).astype(int)).mean() > 20


@pytest.mark.slow
def test_sigint_during_a_real_time_run_leaves_a_complete_file(engines: Path, tmp_path: Path) -> None:
    """Documented behaviour: SIGINT ends a recording; the file is complete and playable, nothing else is left.

    Video only (`--camera FILE --mic none`, paced at real time like a camera): what is under test is the
    writer's shutdown, not the ASR thread's (tests/integration/test_live_pipeline.py covers that)."""
    _need_grid()
    out = tmp_path / "live.mp4"
    command = _live(
        free_endpoint(), "--camera", str(CLIP), "--mic", "none", "--out", str(out), engines=engines
    )
    with LiveRun(command, record=True) as run:
        run.wait(lambda: run.of("sentiment"), 60, "a window")
        outcome = run.stop(signal.SIGINT, timeout_s=10, settle_s=0)
    n, size, _ = _read_back(out)
    assert 0 < n < _read_back(CLIP)[0] and size == (360, 288)
    assert _leftovers(tmp_path) == []
    assert outcome.exit_code == 130, outcome.stderr
    assert outcome.stop_s is not None and outcome.stop_s < 2.0 and "Traceback" not in outcome.stderr
    health = outcome.of("health")
    assert all("video_out" in h["queues"] for h in health)
