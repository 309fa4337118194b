"""A live camera: a V4L2 device (`0`, `/dev/video2`) or a network stream (`rtsp://`, `http://`).

Frames are stamped with `time.monotonic_ns()` right after `grab()`, before decoding. A stream's reads are
bounded by FFmpeg's read timeout; a device's by its driver (see `edge.sources.video`).

Built by `open_video_source(config)` (`edge.sources.factory`) for a device or stream URI (see `edge.sources.video`).
"""

from __future__ import annotations

import logging
import os
import sys
import time

import cv2

from edge.sources.devices import cameras_hint
from edge.sources.errors import SourceNotFoundError, SourceOpenError
from edge.sources.types import ReadStatus, VideoFrame
from edge.sources.uri import CameraKind, CameraUri
from edge.sources.video import VideoSource, VideoSourceConfig, ffmpeg_capture

logger = logging.getLogger(__name__)


class CameraSource(VideoSource):
    """A device or stream, read as fast as it delivers; `width`/`height`/`fps` are requested of a device."""

    def __init__(self, config: VideoSourceConfig) -> None:
        super().__init__(config)
        self._stalled = False  # a live read took about read_timeout_s: the stream stalled

    # -- lifecycle -------------------------------------------------------------------------------------------
    def _check_exists(self) -> None:
        uri = self.uri
        if uri.kind is CameraKind.DEVICE:
            assert uri.path is not None
            if not uri.path.exists():
                raise SourceNotFoundError(f"--camera {uri}: no such device; {cameras_hint()}")
        if uri.kind is CameraKind.INDEX and sys.platform.startswith("linux"):
            if not os.path.exists(f"/dev/video{uri.index}"):
                raise SourceNotFoundError(f"--camera {uri}: no /dev/video{uri.index}; {cameras_hint()}")

    def _open_capture(self) -> cv2.VideoCapture:
        uri, cfg = self.uri, self.config
        if uri.kind is CameraKind.INDEX:
            assert uri.index is not None
            cap = cv2.VideoCapture(uri.index)
        elif uri.kind is CameraKind.DEVICE:
            cap = cv2.VideoCapture(str(uri.path))
        else:  # a stream through FFmpeg, whose interrupt callback enforces the timeouts
            cap = ffmpeg_capture(str(uri.url), cfg)
        if not cap.isOpened():
            cap.release()
            raise SourceOpenError(_open_failure(uri))
        if uri.kind in (CameraKind.INDEX, CameraKind.DEVICE):
            requests = ((cv2.CAP_PROP_FRAME_WIDTH, cfg.width), (cv2.CAP_PROP_FRAME_HEIGHT, cfg.height),
                        (cv2.CAP_PROP_FPS, cfg.fps))  # fmt: skip
            for prop, value in requests:
                if value is not None and not cap.set(prop, value):
                    logger.warning("camera %s refused property %d=%s; using its own", uri, prop, value)
        return cap

    def _on_open(self, fps: float) -> None:
        self._stalled = False

    # -- reading ---------------------------------------------------------------------------------------------
    def _read(self, timeout_s: float) -> VideoFrame:
        """The next frame; a read is bounded by the stream's read_timeout_s or the driver, not by timeout_s."""
        assert self._cap is not None
        start = time.monotonic()
        grabbed = self._cap.grab()
        t_ns = time.monotonic_ns()
        image = self._cap.retrieve()[1] if grabbed else None
        if time.monotonic() - start >= 0.8 * self.config.read_timeout_s:
            self._stalled = True
        if image is None:
            # FFmpeg's interrupt callback ends a stalled read after read_timeout_s; the decoder may flush
            # a few buffered frames before reads fail (measured), so a failure after a stall is a TIMEOUT. The
            # capture stays broken until reopened: the owner reopens after a few TIMEOUTs in a row.
            return self._status(ReadStatus.TIMEOUT if self._stalled else ReadStatus.ERROR)
        media = self._cap.get(cv2.CAP_PROP_POS_MSEC) if self.uri.kind is CameraKind.STREAM else None
        return self._emit(image, t_ns, media)


def _open_failure(uri: CameraUri) -> str:
    if uri.kind is CameraKind.STREAM:
        return f"--camera {uri}: cannot open the stream (unreachable, refused or timed out); check the URL"
    return f"--camera {uri}: cannot open the camera (busy or no permission: check `groups` for 'video')"
