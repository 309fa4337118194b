"""Sharing camera frames (`qamoe-live --share-frames`): a small JPEG thumbnail with the face box, a few a second.

Off by default: without the flag no `FrameSharer` exists and no picture leaves the node. With it, the vision
thread offers every frame it has analysed (`VisionStage.latest`: the frame and the face box found in it, so the
box always belongs to the picture) and the sharer keeps one per period of capture time (the newest that is due;
the rest are not encoded at all). Encoding costs about a millisecond at 320 px, a few times a second, on the
vision thread, which is already the one that spends ~10 ms per analysed frame; the finished message goes to the
main loop through the runtime's bounded events queue, which publishes it without blocking. A thumbnail larger
than `max_bytes` is encoded again at lower qualities; one that is still too large is not shared and is counted
(health: queue `frame_share`, `dropped`). Thread-free: one thread calls `offer`; `stats` reads counters.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import cv2
import numpy as np

from edge.errors import UsageError
from edge.features.visual import VisualFrame
from edge.publish.frame import MAX_JPEG_BYTES, MAX_SIDE_PX, FaceBox, Thumbnail, frame_message
from edge.publish.messages import QueueStats
from edge.publish.wire import Message
from edge.sources.types import VideoFrame
from edge.vocab import NS

log = logging.getLogger(__name__)

DEFAULT_RATE_HZ = 2.0
MAX_RATE_HZ = 5.0  # a preview, not a video stream: each frame costs ~20-90 kB on the wire, per subscriber
FALLBACK_QUALITIES = (50, 35, 20)  # tried in turn when a thumbnail is over max_bytes


class FrameShareConfigError(UsageError, ValueError):
    """A --share-frames value that cannot work (exit 2)."""


@dataclass(frozen=True)
class FrameShareConfig:
    """rate_hz: frames shared per second of capture time (at most MAX_RATE_HZ); max_side: the thumbnail's longest
    side in pixels (never enlarged); quality: JPEG quality first tried; max_bytes: the largest JPEG shared."""

    rate_hz: float = DEFAULT_RATE_HZ
    max_side: int = 320
    quality: int = 70
    max_bytes: int = MAX_JPEG_BYTES

    def __post_init__(self) -> None:
        if not (isinstance(self.rate_hz, int | float) and math.isfinite(self.rate_hz)
                and 0 < self.rate_hz <= MAX_RATE_HZ):
            raise FrameShareConfigError(
                f"--share-frames {self.rate_hz}: give frames per second in (0, {MAX_RATE_HZ:g}] (default "
                f"{DEFAULT_RATE_HZ:g}); the frame view is a preview, not a video stream"
            )
        if not 32 <= self.max_side <= MAX_SIDE_PX:
            raise FrameShareConfigError(f"max_side={self.max_side}: choose 32-{MAX_SIDE_PX} pixels")
        if not 10 <= self.quality <= 95:
            raise FrameShareConfigError(f"quality={self.quality}: choose a JPEG quality of 10-95")
        if not 1024 <= self.max_bytes <= MAX_JPEG_BYTES:
            raise FrameShareConfigError(f"max_bytes={self.max_bytes}: choose 1024-{MAX_JPEG_BYTES}")

    @property
    def period_ns(self) -> int:
        return round(NS / self.rate_hz)


def encode_thumbnail(image: np.ndarray, config: FrameShareConfig) -> Thumbnail | None:
    """`image` (BGR uint8) shrunk to `max_side` and JPEG-encoded within `max_bytes`; None when even the lowest
    fallback quality is too large."""
    height, width = image.shape[:2]
    scale = min(1.0, config.max_side / max(height, width))
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    qualities = [config.quality, *(q for q in FALLBACK_QUALITIES if q < config.quality)]
    for quality in qualities:
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok and buf.size <= config.max_bytes:
            return Thumbnail(buf.tobytes(), image.shape[1], image.shape[0], quality)
    return None


def face_box(vf: VisualFrame) -> FaceBox | None:
    """The face box of a vision step (already normalised by the frame's size), or None without a face."""
    if not vf.present:
        return None
    return FaceBox(vf.column("box_cx"), vf.column("box_cy"), vf.column("box_w"), vf.column("box_h"),
                   vf.column("det_score"))


class FrameSharer:
    """`offer(frame, analysed)` -> the `qamoe.v1.frame` message to publish, or None (not due, or too large)."""

    def __init__(self, config: FrameShareConfig, source_id: str) -> None:
        self.config = config
        self.source_id = source_id
        self.shared = 0
        self.skipped = 0  # due frames not shared: too large at every quality, or the encoder failed
        self._last_ns: int | None = None
        self._last_seq: int | None = None

    def offer(self, latest: tuple[VideoFrame, VisualFrame] | None) -> Message | None:
        if latest is None:
            return None
        frame, vf = latest
        if frame.image is None or frame.seq == self._last_seq or not self._due(frame.t_ns):
            return None
        self._last_seq, self._last_ns = frame.seq, frame.t_ns
        try:
            thumb = encode_thumbnail(frame.image, self.config)
        except cv2.error as exc:  # one bad frame must not end the vision thread
            log.warning("frame %d: JPEG encoding failed (%s): not shared", frame.seq, exc)
            thumb = None
        if thumb is None:
            self.skipped += 1
            log.debug("frame %d: over %d bytes at every quality: not shared", frame.seq, self.config.max_bytes)
            return None
        self.shared += 1
        return frame_message(source_id=self.source_id, thumbnail=thumb, captured_ns=frame.t_ns, face=face_box(vf))

    def _due(self, t_ns: int) -> bool:
        # capture time, not wall time: a fast replay shares the same frames as a real-time one
        return self._last_ns is None or t_ns < self._last_ns or t_ns - self._last_ns >= self.config.period_ns

    def stats(self) -> QueueStats:
        """For health: `dropped` counts due frames that were not shared (the shared ones are the frame topic's
        `messages.published` count)."""
        return QueueStats("rate_limit_latest", 0, 1, self.skipped)
