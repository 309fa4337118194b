"""The typed record every model's forward returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from qamoe.modality import MODALITIES, Modality


@dataclass
class ModelOutput:
    """valence [B] in [-3, 3]; log_variance [B] (predictive); reliability[m] [B] in (0, 1]; router_weights [B, E]
    (E = 0 for models without a router). `aux` carries training-only tensors the losses need."""

    valence: torch.Tensor
    log_variance: torch.Tensor
    reliability: dict[Modality, torch.Tensor]
    router_weights: torch.Tensor
    aux: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def predictive_variance(self) -> torch.Tensor:
        return torch.exp(self.log_variance)

    def reliability_matrix(self) -> torch.Tensor:
        """[B, M] in MODALITIES order."""
        return torch.stack([self.reliability[m] for m in MODALITIES], dim=-1)
