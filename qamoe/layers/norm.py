"""Input standardisation inside the model, so the exported graph takes raw features and the runtime needs no
statistics of its own."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class InputNorm(nn.Module):
    """(x - mean) / std per feature dimension, then zeroed at invalid steps. mean/std are buffers fitted on the
    training split (`set_stats`); they travel in the checkpoint and the ONNX file. The encoders fold them into
    their input projection (`TemporalEncoder.forward`); `forward` here is the plain form, kept for reference
    and tests."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def set_stats(self, mean: np.ndarray, std: np.ndarray) -> None:
        if mean.shape != self.mean.shape or std.shape != self.std.shape:
            raise ValueError(f"stats of shape {mean.shape}/{std.shape} for a {tuple(self.mean.shape)} input")
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.std.copy_(torch.as_tensor(np.maximum(std, 1e-6), dtype=torch.float32))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std * mask.unsqueeze(-1).to(x.dtype)
