"""What a TensorRT plan is tied to, and how that becomes its file name and manifest entry.

A serialized TensorRT engine only runs with the TensorRT version that built it, on a GPU of the same compute
capability (and is tuned for the exact GPU model the builder timed). It also embeds one model's weights and
one precision. The key (model hash, TensorRT version, GPU name + compute capability, precision) therefore
names the file and is recorded in the manifest, so a plan is matched against this machine *before* its bytes
are read.
Standard library only: the build (qamoe.build) and the runtime (edge.backends) share this module.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edge.backends.errors import EngineMismatchError

PRECISIONS = ("fp16", "fp32", "int8")
PLAN_KIND = "tensorrt-plan"
ONNX_KIND = "onnx"
_KEY_FIELDS = ("model_hash", "tensorrt_version", "gpu_name", "compute_capability", "precision")


@dataclass(frozen=True)
class GpuInfo:
    """One CUDA device as the runtime identifies it. compute_capability is "major.minor", e.g. "8.7"."""

    name: str
    compute_capability: str
    index: int = 0

    def __post_init__(self) -> None:
        if not re.fullmatch(r"\d+\.\d+", self.compute_capability):
            raise ValueError(f"compute capability must look like '8.7', got {self.compute_capability!r}")

    def describe(self) -> str:
        return f"{self.name} (sm_{self.compute_capability.replace('.', '')})"


@dataclass(frozen=True)
class PlanKey:
    model_hash: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r} unknown: use one of {PRECISIONS}")
        if len(self.model_hash) < 12:
            raise ValueError("model_hash must be a sha256 hex digest")

    @classmethod
    def for_machine(cls, model_hash: str, tensorrt_version: str, gpu: GpuInfo, precision: str) -> PlanKey:
        return cls(model_hash, tensorrt_version, gpu.name, gpu.compute_capability, precision)

    @property
    def device_tag(self) -> str:
        """TensorRT version + GPU, e.g. trt10.3.0-nvidia-orin-sm87 (also names the timing cache)."""
        gpu = re.sub(r"[^a-z0-9]+", "-", self.gpu_name.lower()).strip("-") or "gpu"
        return f"trt{self.tensorrt_version}-{gpu}-sm{self.compute_capability.replace('.', '')}"

    @property
    def file_name(self) -> str:
        """e.g. qamoe-3fa2c1d0e4b5-trt10.3.0-nvidia-jetson-orin-nano-sm87-fp16.plan"""
        return f"qamoe-{self.model_hash[:12]}-{self.device_tag}-{self.precision}.plan"

    def to_extra(self) -> dict[str, str]:
        return {f: getattr(self, f) for f in _KEY_FIELDS}

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any], *, what: str = "plan") -> PlanKey:
        missing = [f for f in _KEY_FIELDS if f not in extra]
        if missing:
            raise EngineMismatchError(
                f"{what}: manifest entry lacks {missing}; it predates keyed plans: rebuild it with "
                "`python tools/build_engine.py --checkpoint DIR --force --only model`"
            )
        return cls(**{f: str(extra[f]) for f in _KEY_FIELDS})


def plan_mismatches(
    key: PlanKey, *, tensorrt_version: str | None, gpu: GpuInfo | None, model_hash: str | None = None
) -> list[str]:
    """Every reason the plan `key` cannot run here (empty: it matches). Pure; nothing is read from disk."""
    reasons = []
    if tensorrt_version is None:
        reasons.append("TensorRT is not importable here")
    elif tensorrt_version != key.tensorrt_version:
        reasons.append(f"built with TensorRT {key.tensorrt_version}, this machine has {tensorrt_version}")
    if gpu is None:
        reasons.append("no CUDA GPU is visible here")
    else:
        if gpu.compute_capability != key.compute_capability:
            reasons.append(
                f"built for compute capability {key.compute_capability}, this GPU is {gpu.compute_capability}"
            )
        if gpu.name != key.gpu_name:
            reasons.append(f"built on a {key.gpu_name}, this GPU is a {gpu.name}")
    if model_hash is not None and model_hash != key.model_hash:
        reasons.append(
            f"built from model {key.model_hash[:12]}, the manifest's ONNX is model {model_hash[:12]}"
        )
    return reasons
