"""What every model in the harness shares: per-modality input normalisation, encoders, and the loss interface."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from qamoe.config import ModelConfig
from qamoe.layers import InputNorm, TemporalEncoder
from qamoe.modality import MODALITIES, Modality
from qamoe.models.output import ModelOutput

Tensors = Mapping[Modality, torch.Tensor]


class MultimodalModel(nn.Module):
    """Base class: `forward(feats, masks) -> ModelOutput` and `loss_terms(out, labels, ...) -> dict of losses`.

    Subclasses own their fusion. `needs_clean_targets` tells the trainer to also pass the uncorrupted batch."""

    needs_clean_targets = False

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.norms = nn.ModuleDict({str(m): InputNorm(config.input_dims[m]) for m in MODALITIES})
        self.encoders = nn.ModuleDict(
            {
                str(m): TemporalEncoder(
                    in_dim=config.input_dims[m],
                    d_model=config.d_model,
                    kernel=config.encoder_kernel,
                    dropout=config.dropout,
                )
                for m in MODALITIES
            }
        )

    def set_input_stats(self, stats: Mapping[Modality, tuple[np.ndarray, np.ndarray]]) -> None:
        for m in MODALITIES:
            mean, std = stats[m]
            self.norms[str(m)].set_stats(mean, std)

    def encode(self, feats: Tensors, masks: Tensors) -> dict[Modality, tuple[torch.Tensor, torch.Tensor]]:
        """Per modality: (pooled [B, d], coverage [B])."""
        out = {}
        for m in MODALITIES:
            norm = self.norms[str(m)]
            out[m] = self.encoders[str(m)](feats[m], masks[m], norm.mean, norm.std)
        return out

    def forward(self, feats: Tensors, masks: Tensors) -> ModelOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def loss_terms(
        self,
        out: ModelOutput,
        labels: torch.Tensor,
        *,
        clean_feats: Tensors | None = None,
        clean_masks: Tensors | None = None,
    ) -> dict[str, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError
