"""A bank of GLU experts evaluated densely and mixed by sparse routing weights."""

from __future__ import annotations

import math

import torch
from torch import nn


class GLUExperts(nn.Module):
    """expert_e(u) = W_o,e (SiLU(W_g,e u) * (W_v,e u)); output = sum_e w_e expert_e(u).

    All experts are computed as one batched einsum and multiplied by the router's weights, which are zero outside
    the top-k. For a model this small, dense evaluation is faster on CPU and GPU than gathering per-expert batches,
    exports to a static ONNX graph, and still gives exactly top-k sparse *gradients* (an unselected expert's
    weight is 0, so it receives no gradient from that sample)."""

    def __init__(self, *, in_dim: int, hidden: int, out_dim: int, n_experts: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.w_gate = nn.Parameter(torch.empty(n_experts, in_dim, hidden))
        self.w_value = nn.Parameter(torch.empty(n_experts, in_dim, hidden))
        self.w_out = nn.Parameter(torch.empty(n_experts, hidden, out_dim))
        self.b_out = nn.Parameter(torch.zeros(n_experts, out_dim))
        self.drop = nn.Dropout(dropout)
        for w, fan_in in ((self.w_gate, in_dim), (self.w_value, in_dim), (self.w_out, hidden)):
            nn.init.uniform_(w, -1.0 / math.sqrt(fan_in), 1.0 / math.sqrt(fan_in))

    def forward(self, u: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        gate = nn.functional.silu(torch.einsum("bi,eih->beh", u, self.w_gate))
        value = torch.einsum("bi,eih->beh", u, self.w_value)
        out = torch.einsum("beh,eho->beo", self.drop(gate * value), self.w_out) + self.b_out  # [B, E, out]
        return torch.einsum("be,beo->bo", weights, out)
