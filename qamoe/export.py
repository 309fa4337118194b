"""ONNX export with named inputs and outputs, and a torch-vs-ONNX-Runtime parity check.

I/O contract (the runtime relies on these names, never on positions):
  inputs   {m}_feats float32 [batch, T_m, D_m], {m}_mask bool [batch, T_m]   for m in text, audio, vision
  outputs  valence [batch], predictive_variance [batch], reliability_{m} [batch] for each m,
           router_weights [batch, E]
Opset 17: the newest that TensorRT 8.5 (JetPack 5) parses fully; every op used here (MatMul/Einsum lowered to
MatMul, TopK, ScatterElements, Softmax, LayerNormalization, Conv) is in TensorRT's supported-ops list."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from qamoe.modality import MODALITIES, Modality
from qamoe.models import MultimodalModel

log = logging.getLogger(__name__)

OPSET = 17
INPUT_NAMES = [n for m in MODALITIES for n in (f"{m}_feats", f"{m}_mask")]
OUTPUT_NAMES = ["valence", "predictive_variance", *[f"reliability_{m}" for m in MODALITIES], "router_weights"]


class _Exportable(nn.Module):
    """Flat positional I/O in the fixed INPUT_NAMES / OUTPUT_NAMES order, as torch.onnx.export needs."""

    def __init__(self, model: MultimodalModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, *flat: torch.Tensor) -> tuple[torch.Tensor, ...]:
        feats = {m: flat[2 * i] for i, m in enumerate(MODALITIES)}
        masks = {m: flat[2 * i + 1] for i, m in enumerate(MODALITIES)}
        out = self.model(feats, masks)
        rel = [out.reliability[m] for m in MODALITIES]
        return (out.valence, torch.exp(out.log_variance), *rel, out.router_weights)


def example_inputs(
    dims: Mapping[Modality, int], seq_lens: Mapping[Modality, int], batch: int = 2, seed: int = 0
) -> dict[str, np.ndarray]:
    """Random named inputs with ragged masks (one sample has a fully absent audio stream)."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for m in MODALITIES:
        t = seq_lens[m]
        out[f"{m}_feats"] = rng.normal(size=(batch, t, dims[m])).astype(np.float32)
        lengths = rng.integers(1, t + 1, batch)
        mask = np.arange(t)[None, :] < lengths[:, None]
        if m is Modality.AUDIO:
            mask[0] = False
        out[f"{m}_mask"] = mask
        out[f"{m}_feats"] *= mask[..., None]
    return out


def export_onnx(
    model: MultimodalModel,
    path: str | Path,
    seq_lens: Mapping[Modality, int],
    *,
    dynamic_time: bool = False,
) -> Path:
    """Export in eval mode; the batch axis is dynamic, time axes fixed by `seq_lens` unless `dynamic_time`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.eval()
    sample = example_inputs(model.config.input_dims, seq_lens)
    args = tuple(torch.from_numpy(sample[n]) for n in INPUT_NAMES)
    axes: dict[str, dict[int, str]] = {n: {0: "batch"} for n in INPUT_NAMES + OUTPUT_NAMES}
    if dynamic_time:
        for m in MODALITIES:
            axes[f"{m}_feats"][1] = axes[f"{m}_mask"][1] = f"{m}_steps"
    torch.onnx.export(
        _Exportable(model),
        args,
        str(path),
        input_names=INPUT_NAMES,
        output_names=OUTPUT_NAMES,
        dynamic_axes=axes,
        opset_version=OPSET,
        dynamo=False,
        do_constant_folding=True,
    )
    log.info("exported %s (opset %d)", path, OPSET)
    return path


@torch.no_grad()
def torch_reference(model: MultimodalModel, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    model.eval()
    flat = [torch.from_numpy(np.asarray(inputs[n])) for n in INPUT_NAMES]
    outs = _Exportable(model)(*flat)
    return {n: o.numpy() for n, o in zip(OUTPUT_NAMES, outs, strict=True)}


def onnx_parity(model: MultimodalModel, onnx_path: str | Path, inputs: Mapping[str, np.ndarray]) -> float:
    """Max abs difference over every output between torch eager and ONNX Runtime (CPU) on `inputs`."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = dict(zip(OUTPUT_NAMES, sess.run(OUTPUT_NAMES, {n: inputs[n] for n in INPUT_NAMES}), strict=True))
    ref = torch_reference(model, inputs)
    return max(float(np.max(np.abs(got[n] - ref[n]), initial=0.0)) for n in OUTPUT_NAMES)
