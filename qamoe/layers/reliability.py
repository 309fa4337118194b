"""Gaussian reliability: a modality's representation as a mean and an aleatoric variance, and its quality score."""

from __future__ import annotations

import torch
from torch import nn

# Soft bound on log sigma^2 (tanh-scaled, so gradients never vanish at a hard clamp).
_LOG_VAR_BOUND = 8.0


class GaussianReliability(nn.Module):
    """pooled [B, d] + coverage [B] -> mu [B, d], log_sigma2 [B], r [B].

    sigma^2 is one scalar per modality and sample (PAPER.md leaves scalar vs per-dimension open; a scalar is what
    the quality score and the router consume). r = 1 / (1 + sigma^2), computed as sigmoid(-log sigma^2), which is
    the same number without overflow. The variance head sees the coverage, so missing steps can raise sigma^2
    directly; what sigma^2 is trained to regress is set by the reliability objective (qamoe/losses.py).

    absent_max_variance: a modality with no observed step (coverage 0) gets the largest variance the bound
    allows, log sigma^2 = 8, so r = sigmoid(-8) ~ 3e-4 whatever the learned head would say (docs/MODEL.md:
    nothing observed is the one case where the answer is known, not estimated). Off: the head's own estimate."""

    def __init__(self, *, d_model: int, hidden: int = 32, absent_max_variance: bool = True) -> None:
        super().__init__()
        self.absent_max_variance = absent_max_variance
        self.mu = nn.Linear(d_model, d_model)
        self.var = nn.Sequential(nn.Linear(d_model + 1, hidden), nn.GELU(), nn.Linear(hidden, 1))

    def forward(
        self, pooled: torch.Tensor, coverage: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu = self.mu(pooled)
        raw = self.var(torch.cat([pooled, coverage.unsqueeze(-1)], dim=-1)).squeeze(-1)
        # Computed as -log sigma^2 (the export then needs no Neg before the sigmoid), with a scalar fill for
        # absent modalities (no Shape + ConstantOfShape): the same numbers, fewer ONNX nodes.
        neg_log_sigma2 = -_LOG_VAR_BOUND * torch.tanh(raw / _LOG_VAR_BOUND)
        if self.absent_max_variance:
            neg_log_sigma2 = torch.where(coverage > 0, neg_log_sigma2, -_LOG_VAR_BOUND)
        return mu, -neg_log_sigma2, torch.sigmoid(neg_log_sigma2)
