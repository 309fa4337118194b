"""Dual-branch head: sentiment in [-3, 3] and its predictive log-variance."""

from __future__ import annotations

import torch
from torch import nn

VALENCE_RANGE = 3.0
_LOG_VAR_BOUND = 8.0


class DualHead(nn.Module):
    """y [B, d] -> (valence [B] = 3 tanh(a / 3), log_variance [B] = 8 tanh(b / 8)).

    The tanh bounds keep predictions inside the label range and the variance finite while staying linear near 0."""

    def __init__(self, *, d_model: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.mean = nn.Linear(d_model, 1)
        self.log_var = nn.Linear(d_model, 1)

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.norm(y)
        valence = VALENCE_RANGE * torch.tanh(self.mean(y).squeeze(-1) / VALENCE_RANGE)
        log_var = _LOG_VAR_BOUND * torch.tanh(self.log_var(y).squeeze(-1) / _LOG_VAR_BOUND)
        return valence, log_var
