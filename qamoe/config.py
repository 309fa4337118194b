"""Model configuration: one frozen, validated dataclass, JSON round-trippable, unknown keys rejected."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qamoe.errors import ConfigError
from qamoe.modality import MODALITIES, Modality, parse_modality

# Input feature dims of the standard benchmarks' MMSA features (PAPER.md). The live feature spec defines its own.
DATASET_INPUT_DIMS: dict[str, dict[Modality, int]] = {
    "mosi": {Modality.TEXT: 768, Modality.AUDIO: 5, Modality.VISION: 20},
    "mosei": {Modality.TEXT: 768, Modality.AUDIO: 74, Modality.VISION: 35},
    "sims": {Modality.TEXT: 768, Modality.AUDIO: 33, Modality.VISION: 709},
}

RELIABILITY_OBJECTIVES = ("unimodal_nll", "clean_recon")
# What the reliability of a modality with no observed step is: "max" = the variance bound (r ~ 3e-4), "learned" =
# whatever the variance head says (docs/MODEL.md, "Absent modalities").
ABSENT_VARIANCE = ("max", "learned")
# How the router's gate logits enter its top-k softmax (docs/MODEL.md, "Quality-aware router"): "raw" as the
# gates give them, "standardised" = zero mean and unit variance over the experts, per sample.
ROUTER_LOGITS = ("raw", "standardised")


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of QA-MoE and of the baselines built in the same harness.

    input_dims: feature dimension per modality. d_model: width of every modality representation.
    n_experts / top_k: the sparse GLU mixture. quality_gate / prior_fallback: the two QA-MoE mechanisms that the
    ablations switch off. reliability_objective: what the per-modality variance regresses (docs/MODEL.md).
    absent_variance: the variance of a modality with no observed step (ABSENT_VARIANCE). router_logits: the
    router's logit scale (ROUTER_LOGITS)."""

    input_dims: Mapping[Modality, int]
    d_model: int = 64
    encoder_kernel: int = 3
    n_experts: int = 8
    top_k: int = 3
    expert_hidden: int = 96
    router_noise: float = 1.0
    router_logits: str = "raw"
    dropout: float = 0.1
    quality_gate: bool = True
    prior_fallback: bool = True
    reliability_objective: str = "clean_recon"
    absent_variance: str = "max"
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        dims = {parse_modality(k): int(v) for k, v in dict(self.input_dims).items()}
        if set(dims) != set(MODALITIES):
            raise ConfigError(f"input_dims needs a dim for each of {[str(m) for m in MODALITIES]}, got {list(dims)}")
        if any(v <= 0 for v in dims.values()):
            raise ConfigError(f"input_dims must be positive, got {dims}")
        object.__setattr__(self, "input_dims", dims)
        _positive(self, "d_model", "encoder_kernel", "n_experts", "top_k", "expert_hidden")
        if self.encoder_kernel % 2 == 0:
            raise ConfigError(f"encoder_kernel must be odd (same-length conv), got {self.encoder_kernel}")
        if self.top_k > self.n_experts:
            raise ConfigError(f"top_k={self.top_k} exceeds n_experts={self.n_experts}: lower top_k")
        if not self.router_noise >= 0.0:
            raise ConfigError(f"router_noise must be >= 0, got {self.router_noise}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.absent_variance not in ABSENT_VARIANCE:
            raise ConfigError(f"absent_variance {self.absent_variance!r} unknown: use one of {ABSENT_VARIANCE}")
        if self.router_logits not in ROUTER_LOGITS:
            raise ConfigError(f"router_logits {self.router_logits!r} unknown: use one of {ROUTER_LOGITS}")
        if self.reliability_objective not in RELIABILITY_OBJECTIVES:
            raise ConfigError(
                f"reliability_objective {self.reliability_objective!r} unknown: use one of {RELIABILITY_OBJECTIVES}"
            )

    @classmethod
    def for_dataset(cls, dataset: str, **overrides: Any) -> ModelConfig:
        key = dataset.lower()
        if key not in DATASET_INPUT_DIMS:
            raise ConfigError(f"unknown dataset {dataset!r}: use one of {sorted(DATASET_INPUT_DIMS)}")
        return cls(input_dims=DATASET_INPUT_DIMS[key], **overrides)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["input_dims"] = {str(m): v for m, v in self.input_dims.items()}
        d["extra"] = dict(self.extra)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelConfig:
        return from_dict_strict(cls, d)

    def replace(self, **changes: Any) -> ModelConfig:
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ConfigError(f"ModelConfig: unknown key(s) {unknown}; valid keys are {sorted(names)}")
        return dataclasses.replace(self, **changes)


def from_dict_strict(cls: type, d: Mapping[str, Any]) -> Any:
    """Build a config dataclass from a dict, rejecting unknown keys (a misspelt key must not be silently ignored)."""
    if not isinstance(d, Mapping):
        raise ConfigError(f"{cls.__name__}: expected a JSON object, got {type(d).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown key(s) {unknown}; valid keys are {sorted(names)}")
    try:
        return cls(**d)
    except TypeError as e:  # a required key is missing
        raise ConfigError(f"{cls.__name__}: {e}") from None


def _positive(cfg: object, *names: str) -> None:
    for n in names:
        v = getattr(cfg, n)
        if not isinstance(v, int) or v <= 0:
            raise ConfigError(f"{n} must be a positive integer, got {v!r}")
