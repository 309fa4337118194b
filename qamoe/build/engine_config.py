"""The model stage's configuration, window geometry and weights hash: what both the stage
(`qamoe.build.model_engine`: its key, `--check`) and its torch-side work (`qamoe.build.model_export`) read.
Never imports torch."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.backends.plan_key import PRECISIONS
from edge.features.spec import FEATURE_SPEC_FORMAT, FeatureSpec, FeatureSpecError
from edge.manifest import sha256_file
from edge.vocab import MODALITIES as STREAMS
from qamoe.build.errors import BuildConfigError

log = logging.getLogger(__name__)

MODEL_NAME = "qamoe"
ONNX_REL = "models/qamoe.onnx"
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


def weights_hash(checkpoint: Path) -> str:
    path = checkpoint / WEIGHTS_FILE
    if not path.is_file():
        raise BuildConfigError(
            f"{path} not found: --checkpoint must be a checkpoint directory (config.json + weights)"
        )
    return sha256_file(path)


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
