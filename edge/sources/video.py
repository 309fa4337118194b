"""Camera input through OpenCV: devices (`0`, `/dev/video2`), video files (replayed like a camera) and network
streams (`rtsp://`, `http://`).

Two implementations sit behind one type, as in jetson-utils' `videoSource::Create(uri)`:
- `CameraSource` (`edge.sources.video_device`): a live camera, a V4L2 device or a network stream;
- `VideoFileSource` (`edge.sources.video_file`): a video file, replayed on its media clock.
This module holds what they share: the config, the stats, frozen-frame detection, the open/read/close frame
with its status and emit helpers, and the choice between them.

`edge.sources.factory.open_video_source(config)` builds the implementation the URI needs, as
`videoSource::Create(uri)` does; `VideoSource` is the type callers hold, annotate and check. The base is abstract:
subclass the implementation you mean (`VideoFileSource`, `CameraSource`).
"""

from __future__ import annotations

import abc
import dataclasses
import logging
import time
import zlib
from dataclasses import dataclass, field
from typing import Self

import cv2
import numpy as np

from edge.sources.errors import SourceConfigError, SourceOpenError
from edge.sources.replay import ReplayConfig
from edge.sources.types import ReadStatus, VideoFrame
from edge.sources.uri import CameraKind, CameraUri

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoSourceConfig:
    """How to open and read one camera URI. `width`/`height`/`fps` are requests to a device (it may refuse);
    `default_fps` times a file whose container does not state a rate."""

    uri: CameraUri
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    open_timeout_s: float = 5.0
    read_timeout_s: float = 2.0  # per read for streams (FFmpeg); devices use their driver's
    frozen_after: int = 5  # identical reads in a row that make a frame "frozen" (0.2 s at 25 fps)
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    default_fps: float = 25.0

    def __post_init__(self) -> None:
        if not isinstance(self.uri, CameraUri):
            raise SourceConfigError("uri: parse the --camera string with edge.sources.parse_camera first")
        if self.uri.kind is CameraKind.NONE:
            raise SourceConfigError(
                "--camera none has no VideoSource: run the pipeline without video instead"
            )
        if not 0 < self.open_timeout_s <= 60 or not 0 < self.read_timeout_s <= 60:
            raise SourceConfigError("open_timeout_s and read_timeout_s must be in (0, 60] seconds")
        if self.frozen_after < 2:
            raise SourceConfigError(f"frozen_after={self.frozen_after}: need >= 2 identical reads in a row")
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None and not 16 <= value <= 8192:
                raise SourceConfigError(
                    f"{name}={value}: request a size in [16, 8192] pixels or leave it None"
                )
        if self.fps is not None and not 0 < self.fps <= 1000 or not 0 < self.default_fps <= 1000:
            raise SourceConfigError("fps and default_fps must be in (0, 1000]")


@dataclass
class VideoSourceStats:
    frames: int = 0
    frozen_frames: int = 0
    timeouts: int = 0
    errors: int = 0
    passes: int = 0  # completed passes over a file (loop mode)
    resolution_changes: int = 0
    size: tuple[int, int] | None = None  # (width, height) of the last frame

    def snapshot(self) -> VideoSourceStats:
        return dataclasses.replace(self)


class FrozenDetector:
    """Counts identical pictures (or a media timestamp that does not advance) in a row. Thread-free."""

    def __init__(self, frozen_after: int) -> None:
        self.frozen_after = frozen_after
        self._digest: int | None = None
        self._media: float | None = None
        self._run = 1

    def update(self, image: np.ndarray, media_ms: float | None = None) -> bool:
        digest = zlib.crc32(np.ascontiguousarray(image).data)
        same_picture = digest == self._digest
        same_time = media_ms is not None and media_ms > 0 and media_ms == self._media
        self._run = self._run + 1 if (same_picture or same_time) else 1
        self._digest, self._media = digest, media_ms
        return self._run >= self.frozen_after

    def reset(self) -> None:
        self._digest, self._media, self._run = None, None, 1


class VideoSource(abc.ABC):
    """open() / read(timeout_s) / close() over one camera URI. Single-threaded: one owner calls it.
    `open_video_source(config)` (edge.sources.factory) builds the implementation for the URI."""

    def __init__(self, config: VideoSourceConfig) -> None:
        self.config = config
        self.uri = config.uri
        self.stats = VideoSourceStats()
        self._cap: cv2.VideoCapture | None = None
        self._frozen = FrozenDetector(config.frozen_after)
        self._seq = 0

    # -- lifecycle -------------------------------------------------------------------------------------------
    def open(self) -> None:
        """Open the device, file or stream. Raises SourceNotFoundError / SourceOpenError naming the fix."""
        self.close()
        self._check_exists()
        self._cap = self._open_capture()
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self._frozen.reset()
        self._on_open(fps)
        logger.info("video source %s open (%s, %.3g fps)", self.uri, self._cap.getBackendName(), fps)

    @abc.abstractmethod
    def _check_exists(self) -> None:
        """Raise SourceNotFoundError / SourceOpenError, naming the fix, for a URI that cannot be opened."""

    @abc.abstractmethod
    def _open_capture(self) -> cv2.VideoCapture:
        """The opened capture (SourceOpenError if OpenCV cannot open it)."""

    @abc.abstractmethod
    def _on_open(self, fps: float) -> None:
        """Reset the per-open state once the capture is open; `fps` is what the capture reports."""

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    @property
    def is_open(self) -> bool:
        return self._cap is not None

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ---------------------------------------------------------------------------------------------
    def read(self, timeout_s: float = 1.0) -> VideoFrame:
        """The next frame, or a frame with status TIMEOUT / EOS / ERROR and no image. Never raises for a
        failing device; raises SourceError only if called before open()."""
        if self._cap is None:
            raise SourceOpenError(f"video source {self.uri} is not open: call open() first")
        return self._read(timeout_s)

    @abc.abstractmethod
    def _read(self, timeout_s: float) -> VideoFrame:
        """read() of an open source."""

    def _status(self, status: ReadStatus, t_ns: int | None = None) -> VideoFrame:
        if status is ReadStatus.TIMEOUT:
            self.stats.timeouts += 1
        elif status is ReadStatus.ERROR:
            self.stats.errors += 1
        return VideoFrame(status, None, time.monotonic_ns() if t_ns is None else t_ns, self._seq)

    def _emit(self, image: np.ndarray, t_ns: int, media_ms: float | None) -> VideoFrame:
        image = _as_bgr(image)
        size = (image.shape[1], image.shape[0])
        if self.stats.size is not None and size != self.stats.size:
            self.stats.resolution_changes += 1
            logger.info("video source %s changed resolution %s -> %s", self.uri, self.stats.size, size)
        self.stats.size = size
        frozen = self._frozen.update(image, media_ms)
        self.stats.frames += 1
        self.stats.frozen_frames += frozen
        self._seq += 1
        return VideoFrame(ReadStatus.OK, image, t_ns, self._seq, frozen)


def ffmpeg_capture(target: str, config: VideoSourceConfig) -> cv2.VideoCapture:
    """A file or stream through FFmpeg, whose interrupt callback enforces the config's open/read timeouts."""
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(config.open_timeout_s * 1000),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(config.read_timeout_s * 1000),
    ]  # fmt: skip
    return cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)


def _as_bgr(image: np.ndarray) -> np.ndarray:
    """BGR uint8 (H, W, 3) whatever the decoder gave (grey or BGRA from some devices)."""
    if image.dtype != np.uint8:
        image = cv2.convertScaleAbs(image)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image
