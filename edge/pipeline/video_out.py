"""The annotated video: every frame the pipeline sees, with the overlay of the latest published window, written to
a file (`--out`) and/or shown in a window (`--preview`).

The file is written to a temporary file beside the target (same directory, same extension, so the rename is atomic
and the container is the one asked for) and renamed over the target only when the run ends normally or by SIGINT /
SIGTERM (a live recording ends that way: the file is complete and holds every frame written up to the signal).
On an error the temporary file is removed and nothing is left; a run that wrote no frame leaves no file.

Fast replay calls `offer()` on its one thread and every frame is written in order. Live and real-time runs call it
from the vision thread: the frame goes into a small bounded queue (drop-oldest, counted and published in health)
and a writer thread draws and encodes it, so writing never slows capture or inference.

The output frame rate is measured from the frames' capture timestamps (the first `fps_probe_frames` are held
until it is known): in replay that is the file's own rate; live, the camera's actual rate."""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import cv2
import numpy as np

from edge.errors import OutputFault, UsageError
from edge.overlay import OverlayConfig, OverlayState, draw
from edge.pipeline.queues import DropOldestQueue
from edge.pipeline.stages import WindowResult
from edge.publish.messages import QueueStats
from edge.sources.types import ReadStatus, VideoFrame
from edge.vocab import NS

log = logging.getLogger(__name__)

SUFFIXES = (".mp4", ".m4v", ".mov", ".avi")


class OutputError(OutputFault):
    """The annotated video cannot be written (exit code 6)."""


class OutputConfigError(UsageError, ValueError):
    """A bad --out / --preview request (a usage error, exit code 2), so not an `OutputError`: it is raised by
    `VideoOutConfig` before anything is written, outside the writer's `except OutputError`."""


@dataclass(frozen=True)
class VideoOutConfig:
    """path None: preview only. threaded: draw and write on a writer thread (live and real-time runs)."""

    path: Path | None = None
    preview: bool = False
    threaded: bool = False
    queue_frames: int = 8
    fourcc: str = "mp4v"
    fps_probe_frames: int = 8
    default_fps: float = 25.0  # when fewer than two frames arrive, the rate cannot be measured
    overlay: OverlayConfig = field(default_factory=OverlayConfig)

    def __post_init__(self) -> None:
        if self.path is not None:
            if self.path.is_dir():
                raise OutputConfigError(
                    f"--out {self.path} is a directory: give a file name, e.g. {self.path}/out.mp4"
                )
            if self.path.suffix.lower() not in SUFFIXES:
                raise OutputConfigError(
                    f"--out {self.path}: the annotated video is written as {self.fourcc}; give a file name ending "
                    f"in {', '.join(SUFFIXES)}"
                )
        if self.queue_frames < 1 or self.fps_probe_frames < 2 or not 0 < self.default_fps <= 1000:
            raise OutputConfigError(
                "queue_frames must be >= 1, fps_probe_frames >= 2 and default_fps in (0, 1000]"
            )
        if len(self.fourcc) != 4:
            raise OutputConfigError(f"fourcc {self.fourcc!r}: give four characters, e.g. mp4v")


class VideoOut:
    """Context manager: `__enter__` reserves the output (raises OutputError at once if it cannot be written),
    `__exit__` finishes it (rename) or, on an exception, removes it."""

    def __init__(self, config: VideoOutConfig) -> None:
        self.config = config
        self._state = OverlayState()
        self._tmp: Path | None = None
        self._writer: cv2.VideoWriter | None = None
        self._held: list[tuple[np.ndarray, int]] = []  # drawn frames waiting for the frame rate to be known
        self._size: tuple[int, int] | None = None
        self._stamps: deque[int] = deque(maxlen=32)
        self._queue = DropOldestQueue("video_out", config.queue_frames)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: str | None = None
        self._preview = _Preview() if config.preview else None
        self.frames_written = 0

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> Self:
        if self.config.path is not None:
            self._tmp = _reserve(self.config.path)
        if self.config.threaded:
            self._thread = threading.Thread(target=self._run, name="qamoe-video-out", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self.close(keep=exc_type is None)

    def close(self, keep: bool = True) -> Path | None:
        """Finish: the written path, or None (nothing written / not kept). Raises OutputError if writing failed."""
        self._stop.set()
        busy = False
        if self._thread is not None:
            self._thread.join(1.0)
            busy = self._thread.is_alive()
            if busy:  # it still owns the encoder: leave that to it, drop the file
                log.warning(
                    "video writer thread did not finish within 1 s: %s is not written", self.config.path
                )
                keep = False
        try:
            if keep and self._error is None and self._tmp is not None:
                self._open_writer()  # a clip shorter than the probe: open with what is known
                self._flush_held()
        except OutputError as e:
            self._error = str(e)
        finally:
            if self._writer is not None and not busy:
                self._writer.release()
                self._writer = None
            if self._preview is not None and not busy:
                self._preview.close()
        return self._finish(keep)

    def _finish(self, keep: bool) -> Path | None:
        tmp, self._tmp = self._tmp, None
        if tmp is None:
            return None
        dropped = self._queue.dropped
        ok = (
            keep
            and self._error is None
            and self.frames_written > 0
            and tmp.is_file()
            and tmp.stat().st_size > 0
        )
        if not ok:
            tmp.unlink(missing_ok=True)
            if self._error is not None and keep:  # on an exception, that one propagates, not this
                raise OutputError(f"{self.config.path}: {self._error}; nothing was written")
            if keep:
                log.warning("no video frame reached the writer: %s not written", self.config.path)
            return None
        try:
            _verify(tmp, self.frames_written)
            os.replace(tmp, self.config.path)  # type: ignore[arg-type]
        except OutputError as e:
            tmp.unlink(missing_ok=True)
            raise OutputError(f"cannot write {self.config.path}: {e}; nothing was written") from None
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise OutputError(f"cannot write {self.config.path}: {e.strerror}") from e
        log.info(
            "wrote %d annotated frames to %s (%d dropped)", self.frames_written, self.config.path, dropped
        )
        return self.config.path

    # ------------------------------------------------------------------ inputs
    def on_result(self, result: WindowResult, body: dict | None) -> None:
        """Session hook: the latest published window becomes the overlay's state (a reference swap: thread-safe)."""
        if body is not None:
            self._state = OverlayState.from_message(body)

    def offer(self, frame: VideoFrame) -> None:
        """One captured frame; drawn with the state published so far. Never blocks in threaded mode."""
        if frame.status is not ReadStatus.OK or frame.image is None or self._error is not None:
            return
        if self._thread is not None:
            self._queue.put((frame, self._state))
        else:
            self._write(frame, self._state)

    def stats(self) -> QueueStats:
        return self._queue.stats()

    # ------------------------------------------------------------------ writing
    def _run(self) -> None:
        while True:
            item = self._queue.get(timeout_s=0.1)
            if item is None:
                if self._stop.is_set():
                    return
                continue
            try:
                self._write(*item)
            except Exception as e:  # surfaced at close() as an OutputError; capture and inference go on
                log.error("video writer failed: %s", e, exc_info=log.isEnabledFor(logging.DEBUG))
                self._error = f"{type(e).__name__}: {e}"
                return

    def _write(self, frame: VideoFrame, state: OverlayState) -> None:
        assert frame.image is not None
        self._stamps.append(frame.t_ns)
        image = draw(frame.image, state.with_fps(self._fps()), self.config.overlay)
        if self._preview is not None:
            self._preview.show(image)
        if self._tmp is None:
            return
        if self._size is None:
            self._size = (image.shape[1], image.shape[0])
        elif (
            image.shape[1],
            image.shape[0],
        ) != self._size:  # a camera that changed resolution: keep the file's
            image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        if self._writer is None:
            self._held.append((image, frame.t_ns))
            if len(self._held) >= self.config.fps_probe_frames:
                self._open_writer()
                self._flush_held()
            return
        self._writer.write(image)
        self.frames_written += 1

    def _fps(self) -> float | None:
        s = self._stamps
        if len(s) < 2 or s[-1] <= s[0]:
            return None
        return (len(s) - 1) * NS / (s[-1] - s[0])

    def _open_writer(self) -> None:
        if self._writer is not None or not self._held or self._tmp is None or self._size is None:
            return
        stamps = [t for _, t in self._held]
        gaps = np.diff(stamps)
        gaps = gaps[gaps > 0]
        fps = NS / float(np.median(gaps)) if len(gaps) else self.config.default_fps
        fps = min(max(fps, 1.0), 240.0)
        writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter.fourcc(*self.config.fourcc), fps, self._size)
        if not writer.isOpened():
            raise OutputError(f"OpenCV cannot encode {self.config.fourcc} into {self._tmp.suffix} files here")
        log.info("writing %s at %.3g fps, %dx%d", self.config.path, fps, *self._size)
        self._writer = writer

    def _flush_held(self) -> None:
        if self._writer is None:
            return
        for image, _ in self._held:
            self._writer.write(image)
            self.frames_written += 1
        self._held.clear()


def _verify(path: Path, frames: int) -> None:
    """Raise OutputError unless `path` is a readable video of `frames` frames. OpenCV's writer reports no write
    error (a full disk or a file-size limit leaves a truncated, unplayable file behind it), so the file is
    read back before it replaces the target. PyAV, not OpenCV: its FFmpeg logging is off, so a broken file
    costs no lines on stderr."""
    import av

    try:
        with av.open(str(path)) as container:
            found = container.streams.video[0].frames if container.streams.video else 0
    except (av.error.FFmpegError, OSError) as e:
        raise OutputError(
            f"the file could not be completed ({type(e).__name__}: a full disk or a file-size limit?)"
        ) from None
    if found < frames:
        raise OutputError(f"only {found} of {frames} frames reached the file (a full disk or a file-size limit?)")


def _reserve(path: Path) -> Path:
    """Create the temporary file beside `path` (proves the directory is writable before the models load)."""
    tmp = path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileNotFoundError as e:
        raise OutputError(
            f"cannot write {path}: directory {path.parent} does not exist: create it or choose another --out"
        ) from e
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror}: choose a writable directory for --out") from e
    os.close(fd)
    return tmp


class _Preview:
    """cv2.imshow when a display exists; otherwise one warning and nothing."""

    WINDOW = "qamoe-live"

    def __init__(self) -> None:
        self.enabled = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
        self._shown = False
        if not self.enabled:
            log.warning(
                "--preview: no display (DISPLAY / WAYLAND_DISPLAY unset): continuing without a preview"
            )

    def show(self, image: np.ndarray) -> None:
        if not self.enabled:
            return
        try:
            cv2.imshow(self.WINDOW, image)
            cv2.waitKey(1)
            self._shown = True
        except cv2.error as e:
            self.enabled = False
            log.warning(
                "--preview: OpenCV cannot open a window (%s); a GUI build is needed "
                "(opencv-python, not -headless): continuing without a preview",
                str(e).strip()[:120],
            )

    def close(self) -> None:
        if self._shown:
            try:
                cv2.destroyWindow(self.WINDOW)
                cv2.waitKey(1)
            except cv2.error:
                log.debug("preview window already closed")


def sink_for(out: Path | None, preview: bool, *, threaded: bool) -> VideoOut | None:
    """The VideoOut for the CLI's --out / --preview, or None when neither is asked for."""
    if out is None and not preview:
        return None
    return VideoOut(VideoOutConfig(path=out, preview=preview, threaded=threaded))
