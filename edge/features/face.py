"""Face detection for the visual extractor: MediaPipe BlazeFace (ONNX) with its anchor decoding and NMS.

The models and their anchors are built by `tools/build_engine.py` and found through `engines/manifest.json`;
the decoding parameters are read from the model's manifest entry (`extra.decoding`), so the runtime decodes
exactly what the build checked against the TFLite reference.

Pre-processing (the build's parity check does the same): the BGR frame is scaled by s = S / max(H, W) (S = 128
short-range, 192 full-range; `cv2.INTER_AREA`, which averages like PIL's antialiased resize), placed in the
top-left corner of a black S x S square (letterboxing keeps the aspect ratio; padding right or bottom), turned
to RGB and scaled to [-1, 1] as x / 127.5 - 1, NCHW.

Decoding, per anchor a = (ax, ay, aw, ah) (normalised to the square) and regressor row r (input pixels):
  cx = r0 / S * aw + ax, cy = r1 / S * ah + ay, w = r2 / S * aw, h = r3 / S * ah,
  score = sigmoid(clip(logit, -score_clip, score_clip)).
Anchors scoring below `min_score` are dropped; the rest are merged by NMS at IoU `nms_iou` (MediaPipe's 0.3):
- "weighted" (MediaPipe's default): take the best remaining box and every remaining box overlapping it by
  IoU > nms_iou; their score-weighted mean box is one detection with the best box's score. Averaging the many
  anchors that fire on one face steadies the box from frame to frame.
- "plain": greedy NMS; keep the best box, drop those overlapping it by IoU > nms_iou.
Boxes are then mapped back to the frame (x_px = x * max(H, W)) and clipped to it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import onnxruntime as ort

from edge.assets import AssetError, resolve_artifact
from edge.errors import SourceFault

logger = logging.getLogger(__name__)

DETECTOR_MODELS = {"short_range": "blazeface-short-range", "full_range": "blazeface-full-range"}
NmsMode = Literal["weighted", "plain"]
_OUTPUTS = ["regressors", "classificators"]


class VisualInputError(SourceFault, ValueError):
    """A frame the visual extractor cannot take (wrong dtype, shape or channels, or time going backwards). The
    pipeline turns one into an invalid window and the corpus tools skip the clip; one that escaped would be a
    frame from the source the runtime cannot decode into an image, hence exit 3."""


@dataclass(frozen=True)
class Decoding:
    """The decoding parameters of one BlazeFace variant, as the build recorded them in the manifest."""

    input_size: int
    nms_iou: float
    score_clip: float
    anchors: str

    @classmethod
    def from_manifest(cls, name: str, extra: Mapping[str, Any]) -> Decoding:
        d: Any = extra.get("decoding")  # checked by the try below: None or a bad entry raises
        try:
            return cls(int(d["input_size"]), float(d["nms_iou"]), float(d["score_clip"]), str(d["anchors"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise AssetError(
                f"manifest entry {name!r} has no usable `extra.decoding` ({exc!r}): "
                "rebuild it with `python tools/build_engine.py`"
            ) from None


def ort_session(path: Path, threads: int) -> ort.InferenceSession:
    """A CPU session tuned for small models on a few cores: `threads` intra-op threads, full graph
    optimisation, sequential execution (inter-op parallelism only adds scheduling cost to these chains of
    small ops)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise AssetError(
            f"cannot load {path}: {exc}; rebuild it with `python tools/build_engine.py`"
        ) from exc


def iou_one_to_many(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (x0, y0, x1, y1) box with each row of `boxes` [N, >=4]."""
    iw = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0.0, None)
    ih = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0.0, None)
    inter = iw * ih
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def nms(dets: np.ndarray, iou_max: float, mode: NmsMode = "weighted") -> np.ndarray:
    """Merge overlapping detections [N, 5] (x0, y0, x1, y1, score) as described in the module docstring."""
    rest = dets[np.argsort(-dets[:, 4], kind="stable")]
    kept: list[np.ndarray] = []
    while rest.shape[0]:
        top = rest[0]
        overlap = iou_one_to_many(top, rest) > iou_max
        overlap[0] = True
        if mode == "weighted":
            group = rest[overlap]
            weights = group[:, 4:5]
            box = (group[:, :4] * weights).sum(axis=0) / weights.sum()
            kept.append(np.append(box, top[4]))
        else:
            kept.append(top)
        rest = rest[~overlap]
    return np.asarray(kept, dtype=np.float32).reshape(-1, 5)


def decode(
    regressors: np.ndarray, logits: np.ndarray, anchors: np.ndarray, dec: Decoding, min_score: float
) -> np.ndarray:
    """Candidate boxes [K, 5] (x0, y0, x1, y1, score), normalised to the letterboxed square, before NMS."""
    raw = regressors.reshape(-1, regressors.shape[-1])
    logit = np.clip(logits.reshape(-1), -dec.score_clip, dec.score_clip)
    score = 1.0 / (1.0 + np.exp(-logit.astype(np.float64)))
    keep = np.flatnonzero(score >= min_score)
    if keep.size == 0:
        return np.zeros((0, 5), np.float32)
    r, a, size = raw[keep, :4], anchors[keep], float(dec.input_size)
    cx = r[:, 0] / size * a[:, 2] + a[:, 0]
    cy = r[:, 1] / size * a[:, 3] + a[:, 1]
    half_w, half_h = r[:, 2] / size * a[:, 2] / 2, r[:, 3] / size * a[:, 3] / 2
    return np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h, score[keep]], axis=1)


class FaceDetector:
    """BlazeFace on one BGR frame: `detect(frame)` -> detections [K, 5] (x0, y0, x1, y1 in frame pixels,
    clipped to the frame; score), best first. Holds one ORT session and reuses its input buffers; not
    thread-safe (one thread owns it)."""

    def __init__(
        self,
        variant: str = "short_range",
        engines_dir: str | os.PathLike[str] | None = None,
        *,
        min_score: float = 0.5,
        nms_mode: NmsMode = "weighted",
        threads: int = 1,
    ) -> None:
        if variant not in DETECTOR_MODELS:
            raise ValueError(f"unknown BlazeFace variant {variant!r}: use one of {sorted(DETECTOR_MODELS)}")
        name = DETECTOR_MODELS[variant]
        artifact, model_path = resolve_artifact(name, engines_dir)
        self.decoding = Decoding.from_manifest(name, artifact.extra)
        _, anchors_path = resolve_artifact(self.decoding.anchors, engines_dir)
        self.anchors = np.load(anchors_path).astype(np.float32)
        self.session = ort_session(model_path, threads)
        size = self.decoding.input_size
        (inp,) = self.session.get_inputs()
        if list(inp.shape) != [1, 3, size, size] or self.anchors.shape[1:] != (4,):
            raise AssetError(
                f"{name}: input {inp.shape} / anchors {self.anchors.shape} do not fit input_size {size}: "
                "rebuild it with `python tools/build_engine.py`"
            )
        self._input_name = inp.name
        self.min_score, self.nms_mode = min_score, nms_mode
        self._square = np.zeros((size, size, 3), np.uint8)
        self._blob = np.zeros((1, 3, size, size), np.float32)
        logger.debug("loaded %s from %s (%d anchors)", name, model_path, self.anchors.shape[0])

    def preprocess(self, frame_bgr: np.ndarray) -> float:
        """Letterbox `frame_bgr` into the model's input buffer; return the square's side in frame pixels."""
        height, width = frame_bgr.shape[:2]
        side, size = max(height, width), self.decoding.input_size
        new_w, new_h = max(1, round(width * size / side)), max(1, round(height * size / side))
        small = cv2.resize(frame_bgr, (new_w, new_h), interpolation=cv2.INTER_AREA)
        self._square.fill(0)
        self._square[:new_h, :new_w] = small
        rgb_chw = self._square[:, :, ::-1].transpose(2, 0, 1)
        np.multiply(rgb_chw, np.float32(1 / 127.5), out=self._blob[0], dtype=np.float32)
        self._blob -= np.float32(1.0)
        return float(side)

    def detect(self, frame_bgr: np.ndarray) -> np.ndarray:
        side = self.preprocess(frame_bgr)
        regressors, logits = self.session.run(_OUTPUTS, {self._input_name: self._blob})
        candidates = decode(regressors, logits, self.anchors, self.decoding, self.min_score)
        if candidates.shape[0] == 0:
            return candidates
        dets = nms(candidates, self.decoding.nms_iou, self.nms_mode)
        height, width = frame_bgr.shape[:2]
        dets[:, :4] *= side
        dets[:, [0, 2]] = np.clip(dets[:, [0, 2]], 0, width)
        dets[:, [1, 3]] = np.clip(dets[:, [1, 3]], 0, height)
        return dets


def largest(dets: np.ndarray) -> np.ndarray | None:
    """The detection with the largest (clipped) box area, or None when there is none."""
    if dets.shape[0] == 0:
        return None
    areas = (dets[:, 2] - dets[:, 0]) * (dets[:, 3] - dets[:, 1])
    return dets[int(np.argmax(areas))]
