"""The model stage: a QA-MoE checkpoint -> ONNX (always) and a TensorRT plan (where TensorRT and a GPU exist).

ONNX: named I/O (`qamoe.export`), batch dynamic, time axes fixed by the checkpoint's feature spec (or
`seq_lens` given on the command line), opset 17, weights inside the one file. The build fails unless
`onnx.checker` passes, the I/O names are the runtime's contract, and ONNX Runtime matches torch within `atol`
on random windows (batch 1 and N, ragged and absent modalities) and, given shards, on real feature windows.

TensorRT: see `qamoe.build.tensorrt_build`; the plan's file name and manifest entry carry its key
(`edge.backends.plan_key`). Without TensorRT or a GPU one log line says so and only the ONNX is built.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from edge.backends.contract import check_io_names
from edge.backends.errors import BackendError
from edge.backends.plan_key import PLAN_KIND, PRECISIONS, PlanKey, plan_mismatches
from edge.backends.probe import Environment, probe_environment
from edge.features.spec import FEATURE_SPEC_FORMAT, FeatureSpec, FeatureSpecError
from edge.manifest import MANIFEST_NAME, Artifact, Problem, load_manifest, sha256_file
from qamoe.build.errors import BuildConfigError, ConversionError, ParityError
from qamoe.build.runner import ArtifactSpec, BuildContext, onnx_io, record

log = logging.getLogger(__name__)

RECIPE = 3  # bump when the export changes in a way that alters the ONNX (3: leaner encoder + reliability graph)
MODEL_NAME = "qamoe"
ONNX_REL = "models/qamoe.onnx"
STREAMS = ("text", "audio", "vision")
WEIGHTS_FILE = (
    "model.safetensors"  # qamoe.checkpoint.WEIGHTS_FILE, spelt out: importing it would import torch
)


@dataclass(frozen=True)
class EngineBuildConfig:
    """checkpoint: a `qamoe.checkpoint` directory. precision: of the TensorRT plan. calib_shards: shards
    for INT8 calibration and for parity on real windows. seq_lens: time steps per stream, used only when the
    checkpoint carries no live feature spec. atol: ONNX Runtime vs torch tolerance."""

    checkpoint: Path
    precision: str = "fp16"
    calib_shards: Path | None = None
    seq_lens: Mapping[str, int] | None = None
    atol: float = 1e-4
    min_batch: int = 1
    opt_batch: int = 1
    max_batch: int = 32
    parity_batch: int = 8
    max_real_windows: int = 256
    workspace_mib: int = 1024
    build_plan: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "checkpoint", Path(self.checkpoint))
        if self.calib_shards is not None:
            object.__setattr__(self, "calib_shards", Path(self.calib_shards))
            if not self.calib_shards.exists():
                raise BuildConfigError(
                    f"--calib-shards {self.calib_shards} does not exist: pass a shard directory"
                )
        if self.precision not in PRECISIONS:
            raise BuildConfigError(
                f"--precision {self.precision!r} unknown: use one of {', '.join(PRECISIONS)}"
            )
        if self.seq_lens is not None:
            lens = dict(self.seq_lens)
            if set(lens) != set(STREAMS) or any(int(v) <= 0 for v in lens.values()):
                raise BuildConfigError(
                    f"--seq-lens needs a positive length for each of {STREAMS}, got {lens}"
                )
            object.__setattr__(self, "seq_lens", {k: int(v) for k, v in lens.items()})
        if not 0 < self.atol < 1 or self.parity_batch < 2 or self.max_real_windows < 1:
            raise BuildConfigError("atol must be in (0, 1), parity_batch >= 2, max_real_windows >= 1")
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise BuildConfigError("need 1 <= min_batch <= opt_batch <= max_batch")


def parse_seq_lens(text: str) -> dict[str, int]:
    """ "text=48,audio=100,vision=40" -> dict; raises BuildConfigError naming the expected form."""
    try:
        pairs = dict(item.split("=", 1) for item in text.split(","))
        return {k.strip(): int(v) for k, v in pairs.items()}
    except ValueError:
        raise BuildConfigError(f"--seq-lens {text!r}: use the form text=48,audio=100,vision=40") from None


@lru_cache(maxsize=1)
def build_environment() -> Environment:
    return probe_environment()


def weights_hash(checkpoint: Path) -> str:
    path = checkpoint / WEIGHTS_FILE
    if not path.is_file():
        raise BuildConfigError(
            f"{path} not found: --checkpoint must be a checkpoint directory (config.json + weights)"
        )
    return sha256_file(path)


def _file_hash(path: Path) -> str | None:
    return sha256_file(path) if path.is_file() else None


def spec_digest(spec: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(dict(spec), sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def window_geometry(meta: Mapping[str, Any], config: EngineBuildConfig) -> tuple[dict[str, int], str, str]:
    """(seq_lens per stream, feature-spec digest, where the lengths came from)."""
    spec = dict(meta.get("feature_spec") or {})
    if spec.get("format") == FEATURE_SPEC_FORMAT:
        try:
            live = FeatureSpec.from_dict(spec)
        except FeatureSpecError as exc:
            raise BuildConfigError(f"checkpoint feature spec: {exc}") from exc
        if config.seq_lens is not None and config.seq_lens != live.seq_lens:
            log.warning(
                "model: --seq-lens %s ignored: the checkpoint's feature spec says %s",
                config.seq_lens,
                live.seq_lens,
            )
        return live.seq_lens, live.digest, "checkpoint feature spec"
    extra = dict(meta.get("model_config", {}).get("extra") or {})
    if config.seq_lens is not None:
        return dict(config.seq_lens), spec_digest(spec), "--seq-lens"
    if isinstance(extra.get("seq_lens"), Mapping):
        return (
            {k: int(extra["seq_lens"][k]) for k in STREAMS},
            spec_digest(spec),
            "model config extra.seq_lens",
        )
    raise BuildConfigError(
        f"the checkpoint has no live feature spec ({spec or 'none'}), so the window length is unknown: "
        "pass --seq-lens text=48,audio=100,vision=40"
    )


def plan_problems(manifest_path: Path, env: Environment) -> list[Problem]:
    """For `--check`: every TensorRT plan of the manifest that cannot run on this machine, and why."""
    manifest = load_manifest(manifest_path)
    onnx = next((a for a in manifest.artifacts if a.name == MODEL_NAME), None)
    model_hash = str(onnx.extra.get("model_hash")) if onnx is not None else None
    problems = []
    for plan in (a for a in manifest.artifacts if a.kind == PLAN_KIND):
        try:
            key = PlanKey.from_extra(plan.extra, what=plan.name)
            reasons = plan_mismatches(
                key, tensorrt_version=env.tensorrt_version, gpu=env.gpu, model_hash=model_hash
            )
        except (BackendError, ValueError) as exc:
            reasons = [str(exc)]
        problems += [Problem(plan.name, plan.path, f"not usable on this machine: {r}") for r in reasons]
    return problems


@dataclass(frozen=True)
class ModelStage:
    """The build tool's "model" stage (see qamoe.build.runner.Stage)."""

    config: EngineBuildConfig
    name: str = "model"

    def build_key(self) -> str:
        env = build_environment()
        payload = {
            "recipe": RECIPE,
            "model_hash": weights_hash(self.config.checkpoint),
            # config.json too: a damaged or edited config must not read as "up to date"
            "checkpoint_config": _file_hash(self.config.checkpoint / "config.json"),
            "config": {k: str(v) for k, v in sorted(self.config.__dict__.items()) if k != "checkpoint"},
            "tensorrt": env.tensorrt_version if self.config.build_plan else None,
            "gpu": env.gpu.describe() if env.gpu and self.config.build_plan else None,
            "calib": _dir_listing(self.config.calib_shards),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def build(self, ctx: BuildContext) -> list[Artifact]:
        from qamoe.build.model_export import export_and_check

        result = export_and_check(self.config, ctx)
        artifacts = [result.onnx]
        plan = self._plan(ctx, result)
        if plan is not None:
            artifacts.append(plan)
        return artifacts

    def _plan(self, ctx: BuildContext, result: Any) -> Artifact | None:
        env = build_environment()
        why = _no_plan_reason(env, self.config)
        if why:
            log.info("model: no TensorRT plan: %s; built the ONNX path only", why)
            return None
        from qamoe.build.model_export import build_trt_plan

        return build_trt_plan(self.config, ctx, result, env)


def _no_plan_reason(env: Environment, config: EngineBuildConfig) -> str | None:
    if not config.build_plan:
        return "disabled (--no-plan)"
    if env.tensorrt_version is None:
        return "TensorRT is not importable here (install it from JetPack / NVIDIA's packages to build plans)"
    if not env.cudart:
        return "cuda-python is not installed (`pip install cuda-python`)"
    if env.gpu is None:
        return "no CUDA GPU is visible"
    return None


def _dir_listing(path: Path | None) -> list[Any] | None:
    if path is None:
        return None
    files = [path] if path.is_file() else sorted(path.glob("*.npz"))
    return [[f.name, f.stat().st_size, int(f.stat().st_mtime)] for f in files]


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


def manifest_spec_section(ctx: BuildContext) -> Mapping[str, Any] | None:
    path = ctx.engines_dir / MANIFEST_NAME
    if not path.is_file():
        return None
    section = load_manifest(path).sections.get("feature_spec")
    return section if isinstance(section, Mapping) else None
