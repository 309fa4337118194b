"""Model registry: `create_model(name, config)`; every model returns a `ModelOutput`."""

from __future__ import annotations

from collections.abc import Callable

from qamoe.config import ModelConfig
from qamoe.errors import ConfigError
from qamoe.models.base import MultimodalModel
from qamoe.models.baselines import EarlyFusion, LateFusion
from qamoe.models.output import ModelOutput
from qamoe.models.qamoe import QAMoE

_REGISTRY: dict[str, Callable[[ModelConfig], MultimodalModel]] = {
    "qamoe": QAMoE,
    "qamoe_no_quality_gate": lambda c: QAMoE(c.replace(quality_gate=False)),
    "qamoe_no_prior": lambda c: QAMoE(c.replace(prior_fallback=False)),
    "late_fusion": LateFusion,
    "early_fusion": EarlyFusion,
}


def available_models() -> list[str]:
    return sorted(_REGISTRY)


def create_model(name: str, config: ModelConfig) -> MultimodalModel:
    """Build a model by registry name. The ablation names override the matching config flags."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}: use one of {available_models()}") from None
    return factory(config)


__all__ = ["ModelOutput", "MultimodalModel", "QAMoE", "available_models", "create_model"]
