"""A video file (`--camera clip.mp4`), replayed like a camera.

Paced to the media clock, or as fast as possible (see `edge.sources.replay`): a frame not due within the
timeout is kept for the next call and TIMEOUT is returned; the end is EOS (with loop, the next pass, the file
reopened by path). The first picture is decoded at open, so a file without decodable video is refused there.

Built by `open_video_source(config)` (`edge.sources.factory`) for a file URI (see `edge.sources.video`).
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from edge.sources.devices import cameras_hint
from edge.sources.errors import SourceNotFoundError, SourceOpenError
from edge.sources.replay import ReplayClock
from edge.sources.types import ReadStatus, VideoFrame
from edge.sources.video import VideoSource, VideoSourceConfig, ffmpeg_capture
from edge.vocab import NS

logger = logging.getLogger(__name__)


class VideoFileSource(VideoSource):
    """A file, decoded through FFmpeg and stamped with its replay time (`ReplayClock`)."""

    def __init__(self, config: VideoSourceConfig) -> None:
        super().__init__(config)
        self._clock = ReplayClock(config.replay)
        self._index = 0  # frame index within the current file pass
        self._frame_ns = NS / config.default_fps
        self._pending: np.ndarray | None = None  # a decoded file frame not yet due (real-time replay)
        self._ended = False

    # -- lifecycle -------------------------------------------------------------------------------------------
    def _check_exists(self) -> None:
        uri = self.uri
        assert uri.path is not None
        if not uri.path.exists():
            raise SourceNotFoundError(f"--camera {uri}: no such file; {cameras_hint()}")
        if uri.path.is_dir():
            raise SourceOpenError(f"--camera {uri} is a directory: pass a video file inside it")

    def _open_capture(self) -> cv2.VideoCapture:
        cap = ffmpeg_capture(str(self.uri.path), self.config)
        if not cap.isOpened():
            cap.release()
            raise SourceOpenError(
                f"--camera {self.uri}: OpenCV/FFmpeg cannot decode this file; convert it (e.g. to H.264 MP4)"
            )
        return cap

    def _on_open(self, fps: float) -> None:
        self._frame_ns = NS / (fps if 0 < fps <= 1000 else self.config.default_fps)
        if self._seq:  # a reopen after a failure: the timeline moves on
            self._clock.resume_after_gap()
        self._clock.start()
        self._index, self._pending, self._ended = 0, None, False
        self._pending = self._first_frame()

    def _first_frame(self) -> np.ndarray:
        """Decode a file's first picture at open, so a file that opens but holds no decodable video (truncated,
        corrupt, audio only) is refused with the fix instead of running without vision."""
        assert self._cap is not None
        ok, image = self._cap.read()
        if not ok or image is None:
            self.close()
            raise SourceOpenError(
                f"--camera {self.uri}: no video frame decodes (truncated, corrupt or audio only); re-encode it "
                f"(e.g. `ffmpeg -i {self.uri} -c:v libx264 out.mp4`), or pass --camera none"
            )
        return image

    # -- reading ---------------------------------------------------------------------------------------------
    def _read(self, timeout_s: float) -> VideoFrame:
        if self._ended:
            return self._status(ReadStatus.EOS)
        if self._pending is None:
            image = self._decode_next()
            if image is None:
                return self._status(ReadStatus.EOS if self._ended else ReadStatus.ERROR)
            self._pending = image
        due = self._clock.due_ns(round(self._index * self._frame_ns))
        if not self._clock.wait(due, timeout_s):
            return self._status(ReadStatus.TIMEOUT)
        image, self._pending = self._pending, None
        self._index += 1
        self._clock.emitted(due)
        return self._emit(image, due, None)

    def _decode_next(self) -> np.ndarray | None:
        """The next picture of the file; at the end, EOS (`_ended`) or, with loop, the first picture of the
        pass (the file is reopened by path, so one deleted or replaced meanwhile is noticed)."""
        assert self._cap is not None
        ok, image = self._cap.read()
        if ok:
            return image
        if self._index == 0:
            logger.error("video file %s yields no frames", self.uri)
            return None
        self.stats.passes += 1
        if not self.config.replay.loop:
            self._ended = True
            return None
        self._clock.next_pass(round(self._index * self._frame_ns))
        self._index = 0
        self._cap.release()
        self._cap = cv2.VideoCapture(str(self.uri.path), cv2.CAP_FFMPEG)
        ok, image = self._cap.read() if self._cap.isOpened() else (False, None)  # type: ignore[assignment]
        if not ok:
            logger.warning("video file %s could not be read again for the next loop pass", self.uri)
            return None
        return image
