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
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from edge.backends.errors import BackendError
from edge.backends.plan_key import PLAN_KIND, PlanKey, plan_mismatches
from edge.backends.probe import Environment, probe_environment
from edge.manifest import Artifact, Problem, load_manifest, sha256_file
from qamoe.build.engine_config import MODEL_NAME, EngineBuildConfig, weights_hash
from qamoe.build.model_export import build_trt_plan, export_and_check
from qamoe.build.runner import BuildContext

log = logging.getLogger(__name__)

RECIPE = 3  # bump when the export changes in a way that alters the ONNX (3: leaner encoder + reliability graph)


@lru_cache(maxsize=1)
def build_environment() -> Environment:
    return probe_environment()


def _file_hash(path: Path) -> str | None:
    return sha256_file(path) if path.is_file() else None


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
