"""Learnable prior fallback: what a modality contributes when it is not trusted."""

from __future__ import annotations

import torch
from torch import nn


class PriorFallback(nn.Module):
    """h = r * mu + (1 - r) * p, with p a learned vector per modality.

    An unreliable modality (r -> 0) is replaced by a learned, data-independent prior instead of by noise or by a
    zero vector the downstream layers never saw during clean training. With `enabled=False` (the ablation) the
    modality is only scaled: h = r * mu."""

    def __init__(self, *, d_model: int, enabled: bool = True) -> None:
        super().__init__()
        self.enabled = enabled
        self.prior = nn.Parameter(torch.zeros(d_model)) if enabled else None

    def forward(self, mu: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        r = r.unsqueeze(-1)
        if self.prior is None:
            return r * mu
        return r * mu + (1.0 - r) * self.prior
