"""A bank of GLU experts evaluated densely and mixed by sparse routing weights."""

from __future__ import annotations

import math

import torch
from torch import nn


class GLUExperts(nn.Module):
    """expert_e(u) = W_o,e (SiLU(W_g,e u) * (W_v,e u)); output = sum_e w_e expert_e(u).

    All experts are computed as two batched MatMuls and multiplied by the router's weights, which are zero outside
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
        # Written as plain MatMuls, not einsum: ONNX Runtime's CPU Einsum kernel costs several times a MatMul
        # at these shapes, and older TensorRT releases handle MatMul more reliably.
        n_exp, _, hidden = self.w_gate.shape
        gate = nn.functional.silu(torch.matmul(u, _stack(self.w_gate)).reshape(-1, n_exp, hidden))
        value = torch.matmul(u, _stack(self.w_value)).reshape(-1, n_exp, hidden)
        x = self.drop(gate * value).transpose(0, 1)  # [E, B, H]
        out = torch.matmul(x, self.w_out).transpose(0, 1) + self.b_out  # [B, E, out]
        return torch.matmul(weights.unsqueeze(1), out).squeeze(1)


def _stack(w: torch.Tensor) -> torch.Tensor:
    """[E, I, H] -> [I, E*H]: every expert's input projection as one matrix (one MatMul for all experts)."""
    n_exp, in_dim, hidden = w.shape
    return w.permute(1, 0, 2).reshape(in_dim, n_exp * hidden)
