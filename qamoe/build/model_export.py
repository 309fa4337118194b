"""The model stage's work (torch side): load the checkpoint, export, check, compare, build the plan.

Kept apart from `qamoe.build.model_engine` (which imports this module to run it), with torch, onnx and the
qamoe modules that need them imported only inside the functions that use them, so that building the stage
list, computing its key and `--check` never import torch.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.backends.base import BackendConfig
from edge.backends.contract import check_io_names
from edge.backends.plan_key import PLAN_KIND, PlanKey
from edge.backends.probe import Environment
from edge.features.spec import FEATURE_SPEC_FORMAT
from edge.manifest import Artifact
from qamoe.build.engine_config import (
    MODEL_NAME,
    ONNX_REL,
    STREAMS,
    EngineBuildConfig,
    weights_hash,
    window_geometry,
)
from qamoe.build.errors import BuildConfigError, ConversionError, ParityError
from qamoe.build.runner import ArtifactSpec, BuildContext, onnx_io, record

log = logging.getLogger(__name__)

Windows = dict[str, np.ndarray]
# Reduced precision is not bit-exact: fp32 must still agree closely; fp16/int8 are recorded and warned.
TRT_ATOL = {"fp32": 1e-3, "fp16": 5e-2, "int8": 2e-1}


@dataclass
class ExportResult:
    onnx: Artifact
    model: Any
    seq_lens: dict[str, int]
    model_hash: str
    real: Windows | None = None
    random: list[Windows] = field(default_factory=list)


def random_windows(dims: Mapping[str, int], seq_lens: Mapping[str, int], batch: int) -> list[Windows]:
    """Batch 1 and batch N: ragged masks, one sample with audio absent, one with everything absent."""
    from qamoe.export import example_inputs
    from qamoe.modality import MODALITIES

    d = {m: dims[str(m)] for m in MODALITIES}
    t = {m: seq_lens[str(m)] for m in MODALITIES}
    single, many = example_inputs(d, t, batch=1, seed=1), example_inputs(d, t, batch=batch, seed=2)
    for s in STREAMS:
        many[f"{s}_feats"][-1] = 0.0
        many[f"{s}_mask"][-1] = False
    return [single, many]


def input_space_windows(model: Any, seq_lens: Mapping[str, int], batch: int, seed: int = 3) -> Windows:
    """Batch N of random windows in the model's own input space: mean + std * N(0, 1) per feature from the
    checkpoint's input statistics, with ragged masks. Unlike N(0, 1) windows these hold what real features
    hold: columns that were constant in training sit at their constant (vision's face_present at 1), large
    offsets (energies in dB) at their scale. A graph that is numerically fragile on real windows fails here
    without any feature shards (docs/MODEL.md, "Export")."""
    from qamoe.export import example_inputs
    from qamoe.modality import MODALITIES

    dims = {m: int(model.config.input_dims[m]) for m in MODALITIES}
    out = example_inputs(dims, {m: seq_lens[str(m)] for m in MODALITIES}, batch=batch, seed=seed)
    for m in MODALITIES:
        norm = model.norms[str(m)]
        mean, std = norm.mean.detach().cpu().numpy(), norm.std.detach().cpu().numpy()
        mask = out[f"{m}_mask"][..., None]
        out[f"{m}_feats"] = ((mean + std * out[f"{m}_feats"]) * mask).astype(np.float32)
    return out


def real_windows(shards: Path, seq_lens: Mapping[str, int], dims: Mapping[str, int], limit: int) -> Windows:
    """Up to `limit` windows from feature shards, cut or zero-padded to the model's window length."""
    from qamoe.data.gather import read_shards
    from qamoe.modality import MODALITIES

    fs, _ = read_shards(shards)
    n = min(len(fs), limit)
    out: Windows = {}
    for m in MODALITIES:
        s, t = str(m), seq_lens[str(m)]
        if fs.dims[m] != dims[s]:
            raise BuildConfigError(
                f"--calib-shards: {s} features have {fs.dims[m]} columns, the model takes {dims[s]}"
            )
        feats = np.zeros((n, t, dims[s]), np.float32)
        mask = np.zeros((n, t), np.bool_)
        k = min(t, fs.seq_lens[m])
        feats[:, :k], mask[:, :k] = fs.feats[m][:n, :k], fs.masks[m][:n, :k]
        out[f"{s}_feats"], out[f"{s}_mask"] = feats, mask
    return out


def export_and_check(config: EngineBuildConfig, ctx: BuildContext) -> ExportResult:
    import onnx

    from qamoe.checkpoint import load_checkpoint
    from qamoe.errors import CheckpointError
    from qamoe.export import OPSET, export_onnx, torch_reference

    try:
        model, meta = load_checkpoint(config.checkpoint)
    except CheckpointError as exc:
        raise BuildConfigError(f"--checkpoint: {exc}") from exc
    seq_lens, digest, seq_source = window_geometry(meta, config)
    dims = {str(m): int(v) for m, v in model.config.input_dims.items()}
    _check_spec_is_made(meta, digest)
    windows = random_windows(dims, seq_lens, config.parity_batch)
    real = (
        real_windows(config.calib_shards, seq_lens, dims, config.max_real_windows)
        if config.calib_shards
        else None
    )
    with stage_tmpdir(ctx) as tmp:
        path = Path(tmp) / "model.onnx"
        from qamoe.modality import parse_modality

        export_onnx(model, path, {parse_modality(k): v for k, v in seq_lens.items()})
        _check_onnx(onnx, path)
        diffs = {
            f"random_batch{len(w['text_mask'])}": _ort_diff(path, w, torch_reference(model, w))
            for w in windows
        }
        space = input_space_windows(model, seq_lens, config.parity_batch)
        ref = torch_reference(model, space)
        diffs[f"input_space_batch{config.parity_batch}"] = _ort_diff(path, space, ref)
        if real is not None:
            diffs["real_windows"] = _ort_diff(path, real, torch_reference(model, real))
        for what, diff in diffs.items():
            check_parity(f"ONNX Runtime vs torch ({what})", diff, config.atol)
        place(path, ctx.asset_path(ONNX_REL))
    extra = {
        "model": meta.get("model"),
        "model_hash": weights_hash(config.checkpoint),
        "model_hash_of": "sha256 of the checkpoint's model.safetensors",
        "opset": OPSET,
        "seq_lens": seq_lens,
        "seq_lens_from": seq_source,
        "dims": dims,
        "feature_spec_digest": digest,
        "checkpoint_git_commit": meta.get("git_commit"),
        "parity_max_abs_diff": diffs,
        "export": {"constant_folding": True},
    }
    onnx_artifact = record_onnx(ctx, extra)
    return ExportResult(onnx_artifact, model, seq_lens, extra["model_hash"], real, windows)


def _check_onnx(onnx: Any, path: Path) -> None:
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ConversionError(f"model: onnx.checker rejected the export: {exc}") from exc
    proto = onnx.load(str(path), load_external_data=False)
    external = [t.name for t in proto.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    if external or any(p.name != path.name for p in path.parent.iterdir() if p.is_file()):
        raise ConversionError(
            f"model: the export wrote external weight files ({external[:3]}); expected one file"
        )


def _ort_diff(path: Path, window: Windows, reference: Mapping[str, np.ndarray]) -> float:
    from edge.backends.ort import OrtBackend

    with OrtBackend(path, BackendConfig(backend="ort-cpu")) as backend:
        return max_abs_diff(backend.infer(window), reference)


def _check_spec_is_made(meta: Mapping[str, Any], digest: str) -> None:
    spec = meta.get("feature_spec") or {}
    if spec.get("format") != FEATURE_SPEC_FORMAT:
        return
    from edge.features.spec import FeatureSpec, extractor_spec_for

    live = FeatureSpec.from_dict(spec)
    if extractor_spec_for(digest, live.window_s, live.hop_s) is None:
        log.warning(
            "model: the checkpoint's feature spec (%s) is none the extractors make: the runtime refuses to "
            "feed it; train on features from this qamoe-live",
            digest[:12],
        )


def build_trt_plan(
    config: EngineBuildConfig, ctx: BuildContext, result: ExportResult, env: Environment
) -> Artifact:
    from qamoe.build.tensorrt_build import TrtBuildSettings, build_plan, calibration_batches

    assert env.gpu is not None and env.tensorrt_version is not None  # checked by the caller
    settings = TrtBuildSettings(
        precision=config.precision,
        min_batch=config.min_batch,
        opt_batch=config.opt_batch,
        max_batch=config.max_batch,
        workspace_mib=config.workspace_mib,
    )
    key = PlanKey.for_machine(result.model_hash, env.tensorrt_version, env.gpu, config.precision)
    rel = f"models/{key.file_name}"
    cache_dir = ctx.engines_dir / ".cache" / "tensorrt"
    tag = key.device_tag
    onnx_path = ctx.asset_path(ONNX_REL)
    shapes = _window_shapes(result)
    calib = calibration_batches(result.real, settings.calib_batch) if result.real is not None else []
    build_plan(
        onnx_path,
        ctx.asset_path(rel),
        settings,
        window_shapes=shapes,
        timing_cache=cache_dir / f"timing-{tag}.cache",
        calib=calib,
        calib_cache=cache_dir / f"calib-{result.model_hash[:12]}.cache",
    )
    extra: dict[str, Any] = {
        **key.to_extra(),
        "onnx_sha256": result.onnx.sha256,
        "min_batch": settings.min_batch,
        "opt_batch": settings.opt_batch,
        "max_batch": settings.max_batch,
        "seq_lens": result.seq_lens,
        "timing_cache": f".cache/tensorrt/timing-{tag}.cache",
    }
    artifact = record(
        ctx, ArtifactSpec(key.file_name.removesuffix(".plan"), PLAN_KIND, rel, None, extra=extra)
    )
    extra["parity_max_abs_diff"] = _trt_parity(ctx, artifact, result, env, config.precision)
    return record(ctx, ArtifactSpec(artifact.name, PLAN_KIND, rel, None, extra=extra))


def _window_shapes(result: ExportResult) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for t in result.onnx.inputs:
        shapes[t.name] = tuple(1 if isinstance(d, str) else int(d) for d in t.shape)
    return shapes


def _trt_parity(
    ctx: BuildContext, plan: Artifact, result: ExportResult, env: Environment, precision: str
) -> float:
    from edge.backends.trt import TensorRTBackend
    from qamoe.export import torch_reference

    windows = [*result.random, *([result.real] if result.real is not None else [])]
    with TensorRTBackend(
        plan, ctx.engines_dir, BackendConfig(backend="trt"), env=env, model_hash=result.model_hash
    ) as b:
        diff = max(max_abs_diff(b.infer(w), torch_reference(result.model, w)) for w in windows)
    if precision == "fp32":
        check_parity("TensorRT fp32 vs torch", diff, TRT_ATOL["fp32"])
    elif not diff <= TRT_ATOL[precision]:
        log.warning(
            "model: TensorRT %s vs torch max abs diff %.2e (> %.0e): check accuracy",
            precision,
            diff,
            TRT_ATOL[precision],
        )
    else:
        log.info("model: TensorRT %s vs torch max abs diff %.2e", precision, diff)
    return diff


def stage_tmpdir(ctx: BuildContext) -> tempfile.TemporaryDirectory[str]:
    cache = ctx.engines_dir / ".cache"
    cache.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(prefix=".model-", dir=cache)


def place(tmp_file: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(tmp_file, 0o644)
    os.replace(tmp_file, dest)


def record_onnx(ctx: BuildContext, extra: Mapping[str, Any]) -> Artifact:
    inputs, outputs = onnx_io(ctx.asset_path(ONNX_REL))
    check_io_names([t.name for t in inputs], [t.name for t in outputs], source=ONNX_REL)
    return record(ctx, ArtifactSpec(MODEL_NAME, "onnx", ONNX_REL, None, inputs, outputs, dict(extra)))


def max_abs_diff(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> float:
    if set(a) != set(b):
        raise ConversionError(f"outputs differ in names: {sorted(a)} vs {sorted(b)}")
    return max(float(np.max(np.abs(np.asarray(a[k], np.float64) - b[k]), initial=0.0)) for k in a)


def check_parity(what: str, diff: float, atol: float) -> None:
    if not diff <= atol:  # also catches NaN
        raise ParityError(
            f"model: {what} max abs diff {diff:.2e} > {atol:.0e}: the export is wrong; not written"
        )
    log.info("model: %s max abs diff %.2e (<= %.0e)", what, diff, atol)


