"""The `qamoe.v1.frame` payload: one small JPEG thumbnail of the camera, base64 in the JSON, with the face box.

Published only when the node is told to (`qamoe-live --share-frames`): by default no picture leaves the node.
The image is already encoded here (the pipeline encodes it, `edge.pipeline.frames`), so this module needs no
OpenCV and `qamoe-tap` does not import it. Field meanings and the bandwidth it costs: docs/messages.md.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from edge.publish.errors import MessageError
from edge.publish.wire import MAX_NAME_CHARS, TOPIC_FRAME, Checks, Message, WallClock, clean_text

MAX_JPEG_BYTES = 65536  # a thumbnail larger than this is re-encoded smaller or not shared (the schema's bound)
MAX_B64_CHARS = (MAX_JPEG_BYTES + 2) // 3 * 4
MAX_SIDE_PX = 1024  # of a thumbnail; the pipeline's default is 320
JPEG_MAGIC = b"\xff\xd8\xff"


@dataclass(frozen=True)
class FaceBox:
    """The face the vision stage analysed in this frame: centre and size as fractions of the frame's width (x, w)
    and height (y, h), and the detector's score; all in [0, 1] (the vision features' `box_*` columns)."""

    cx: float
    cy: float
    w: float
    h: float
    score: float

    @classmethod
    def from_pixels(
        cls, x0: float, y0: float, x1: float, y1: float, *, width: int, height: int, score: float
    ) -> FaceBox:
        """A pixel box (corners) in a `width` x `height` frame, clipped to the frame and normalised."""
        if width < 1 or height < 1:
            raise MessageError(f"frame size {width}x{height}: give the frame's size in pixels (>= 1)")
        left, right = sorted((min(max(x0, 0.0), width), min(max(x1, 0.0), width)))
        top, bottom = sorted((min(max(y0, 0.0), height), min(max(y1, 0.0), height)))
        return cls((left + right) / 2 / width, (top + bottom) / 2 / height, (right - left) / width,
                   (bottom - top) / height, score)


@dataclass(frozen=True)
class Thumbnail:
    """An encoded JPEG and its size in pixels; `quality` is the JPEG quality it was encoded with (1-100)."""

    jpeg: bytes
    width: int
    height: int
    quality: int

    def __post_init__(self) -> None:
        if not self.jpeg.startswith(JPEG_MAGIC):
            raise MessageError("the thumbnail is not a JPEG (no FF D8 FF header): encode it with cv2.imencode('.jpg')")
        if len(self.jpeg) > MAX_JPEG_BYTES:
            raise MessageError(
                f"the thumbnail has {len(self.jpeg)} bytes, over {MAX_JPEG_BYTES}: encode it smaller (lower quality "
                "or a smaller side)"
            )
        if not (1 <= self.width <= MAX_SIDE_PX and 1 <= self.height <= MAX_SIDE_PX):
            raise MessageError(f"thumbnail of {self.width}x{self.height}: give sides in 1-{MAX_SIDE_PX} px")
        if not 1 <= self.quality <= 100:
            raise MessageError(f"JPEG quality {self.quality}: give 1-100")


def frame_message(
    *,
    source_id: str,
    thumbnail: Thumbnail,
    captured_ns: int,
    face: FaceBox | None,
    clock: WallClock | None = None,
) -> Message:
    """The `qamoe.v1.frame` message for one camera frame captured at monotonic `captured_ns`. `face=None`: no
    face was found. A box number that is NaN or outside [0, 1] makes the box null and the message invalid."""
    checks = Checks()
    clock = clock or WallClock.now()
    body: dict[str, Any] = {
        "source_id": clean_text(source_id, MAX_NAME_CHARS),
        "captured": clock.timepoint(captured_ns),
        "width": thumbnail.width,
        "height": thumbnail.height,
        "quality": thumbnail.quality,
        "jpeg_bytes": len(thumbnail.jpeg),
        "jpeg": base64.b64encode(thumbnail.jpeg).decode("ascii"),
        "face": _face(face, checks),
    }
    return Message(TOPIC_FRAME, {**checks.verdict(), **body})


def _face(face: FaceBox | None, checks: Checks) -> dict[str, float] | None:
    if face is None:
        return None
    values = {k: checks.number(getattr(face, k), f"face.{k}", 0, 1) for k in ("cx", "cy", "w", "h", "score")}
    if any(v is None for v in values.values()):
        return None
    return {k: v for k, v in values.items() if v is not None}
