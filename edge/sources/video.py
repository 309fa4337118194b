"""Camera input through OpenCV: devices (`0`, `/dev/video2`), video files (replayed like a camera) and network
streams (`rtsp://`, `http://`).

`read(timeout_s)` never blocks forever and says why it returned (`ReadStatus`):
- files: paced to the media clock (or as fast as possible; see `edge.sources.replay`); a frame not due within
  the timeout is kept for the next call and TIMEOUT is returned; the end is EOS (with loop, the next pass);
- streams: FFmpeg's open/read timeouts (`CAP_PROP_OPEN_TIMEOUT_MSEC` / `CAP_PROP_READ_TIMEOUT_MSEC`, enforced
  by its interrupt callback) bound every call, so a stalled RTSP/HTTP read returns TIMEOUT;
- devices: the V4L2 driver's select() timeout bounds a read; the worker that owns the source also watches
  the time since the last frame.
Live frames are stamped with `time.monotonic_ns()` right after `grab()`, before decoding.

Frozen frames: a picture identical (CRC-32 of the pixels) to the previous `frozen_after - 1` reads, or a
stream
whose media timestamp stops advancing for as many reads, is returned with `frozen=True`. A real sensor never
repeats bit-exactly (noise), so this flags a stuck driver or encoder; an encoder that skips a perfectly static
scene can flag it too, which the consumer treats as "no new information", the truth either way.
Resolution changes are allowed: frames keep their size, the change is logged and counted.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
import zlib
from dataclasses import dataclass, field

import cv2
import numpy as np

from edge.sources.devices import cameras_hint
from edge.sources.errors import SourceConfigError, SourceNotFoundError, SourceOpenError
from edge.sources.replay import ReplayClock, ReplayConfig
from edge.sources.types import NS_PER_S, ReadStatus, VideoFrame
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


class VideoSource:
    """open() / read(timeout_s) / close() over one camera URI. Single-threaded: one owner calls it."""

    def __init__(self, config: VideoSourceConfig) -> None:
        self.config = config
        self.uri = config.uri
        self.stats = VideoSourceStats()
        self._cap: cv2.VideoCapture | None = None
        self._clock = ReplayClock(config.replay)
        self._frozen = FrozenDetector(config.frozen_after)
        self._seq = 0
        self._index = 0  # frame index within the current file pass
        self._frame_ns = NS_PER_S / config.default_fps
        self._pending: np.ndarray | None = None  # a decoded file frame not yet due (real-time replay)
        self._ended = False
        self._stalled = False  # a live read took about read_timeout_s: the stream stalled

    # -- lifecycle -------------------------------------------------------------------------------------------
    def open(self) -> None:
        """Open the device, file or stream. Raises SourceNotFoundError / SourceOpenError naming the fix."""
        self.close()
        self._check_exists()
        self._cap = self._open_capture()
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        if self.uri.is_file:
            self._frame_ns = NS_PER_S / (fps if 0 < fps <= 1000 else self.config.default_fps)
            if self._seq:  # a reopen after a failure: the timeline moves on
                self._clock.resume_after_gap()
            self._clock.start()
        self._index, self._pending, self._ended, self._stalled = 0, None, False, False
        self._frozen.reset()
        if self.uri.is_file:
            self._pending = self._first_frame()
        logger.info("video source %s open (%s, %.3g fps)", self.uri, self._cap.getBackendName(), fps)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    @property
    def is_open(self) -> bool:
        return self._cap is not None

    def __enter__(self) -> VideoSource:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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

    def _check_exists(self) -> None:
        uri = self.uri
        if uri.kind in (CameraKind.FILE, CameraKind.DEVICE):
            assert uri.path is not None
            if not uri.path.exists():
                what = "no such file" if uri.is_file else "no such device"
                raise SourceNotFoundError(f"--camera {uri}: {what}; {cameras_hint()}")
            if uri.is_file and uri.path.is_dir():
                raise SourceOpenError(f"--camera {uri} is a directory: pass a video file inside it")
        if uri.kind is CameraKind.INDEX and sys.platform.startswith("linux"):
            import os

            if not os.path.exists(f"/dev/video{uri.index}"):
                raise SourceNotFoundError(f"--camera {uri}: no /dev/video{uri.index}; {cameras_hint()}")

    def _open_capture(self) -> cv2.VideoCapture:
        uri, cfg = self.uri, self.config
        if uri.kind is CameraKind.INDEX:
            cap = cv2.VideoCapture(uri.index)
        elif uri.kind is CameraKind.DEVICE:
            cap = cv2.VideoCapture(str(uri.path))
        else:  # file or stream through FFmpeg, whose interrupt callback enforces these timeouts
            target = str(uri.path) if uri.is_file else str(uri.url)
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(cfg.open_timeout_s * 1000),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(cfg.read_timeout_s * 1000),
            ]  # fmt: skip
            cap = cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)
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

    # -- reading ---------------------------------------------------------------------------------------------
    def read(self, timeout_s: float = 1.0) -> VideoFrame:
        """The next frame, or a frame with status TIMEOUT / EOS / ERROR and no image. Never raises for a
        failing device; raises SourceError only if called before open()."""
        if self._cap is None:
            raise SourceOpenError(f"video source {self.uri} is not open: call open() first")
        if self.uri.is_file:
            return self._read_file(timeout_s)
        return self._read_live()

    def _status(self, status: ReadStatus, t_ns: int | None = None) -> VideoFrame:
        if status is ReadStatus.TIMEOUT:
            self.stats.timeouts += 1
        elif status is ReadStatus.ERROR:
            self.stats.errors += 1
        return VideoFrame(status, None, time.monotonic_ns() if t_ns is None else t_ns, self._seq)

    def _read_live(self) -> VideoFrame:
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

    def _read_file(self, timeout_s: float) -> VideoFrame:
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
        ok, image = self._cap.read() if self._cap.isOpened() else (False, None)
        if not ok:
            logger.warning("video file %s could not be read again for the next loop pass", self.uri)
            return None
        return image

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


def _as_bgr(image: np.ndarray) -> np.ndarray:
    """BGR uint8 (H, W, 3) whatever the decoder gave (grey or BGRA from some devices)."""
    if image.dtype != np.uint8:
        image = cv2.convertScaleAbs(image)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def _open_failure(uri: CameraUri) -> str:
    if uri.kind is CameraKind.STREAM:
        return f"--camera {uri}: cannot open the stream (unreachable, refused or timed out); check the URL"
    if uri.is_file:
        return f"--camera {uri}: OpenCV/FFmpeg cannot decode this file; convert it (e.g. to H.264 MP4)"
    return f"--camera {uri}: cannot open the camera (busy or no permission: check `groups` for 'video')"
