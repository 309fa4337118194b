"""Quality-aware top-k router: a semantic (content) gate plus a quality gate driven by the reliabilities."""

from __future__ import annotations

import torch
from torch import nn


class QualityAwareRouter(nn.Module):
    """fused [B, F] + reliabilities [B, M] -> dense routing weights [B, E] with exactly k non-zeros per row.

    logits = W_s fused + b_s  (semantic gate)  +  W_q r + b_q  (quality gate, off in the ablation).
    During training, Gaussian noise of std `noise` is added to the logits before the top-k (noisy top-k gating,
    Shazeer et al. 2017): at initialisation every sample routes alike, and without exploration the experts that
    lose the first draws never receive a gradient again. Evaluation and export are noise-free and deterministic.
    The top-k logits are softmax-normalised and scattered back into a dense [B, E] tensor: the same graph runs in
    ONNX (TopK + ScatterElements), with no data-dependent control flow."""

    def __init__(
        self,
        *,
        in_dim: int,
        n_modalities: int,
        n_experts: int,
        top_k: int,
        quality_gate: bool = True,
        noise: float = 1.0,
    ) -> None:
        super().__init__()
        self.top_k = top_k
        self.noise = noise
        self.semantic = nn.Linear(in_dim, n_experts)
        self.quality = nn.Linear(n_modalities, n_experts) if quality_gate else None

    def logits(self, fused: torch.Tensor, reliability: torch.Tensor) -> torch.Tensor:
        logits = self.semantic(fused)
        if self.quality is not None:
            logits = logits + self.quality(reliability)
        return logits

    def forward(self, fused: torch.Tensor, reliability: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (weights [B, E], logits [B, E]); logits are kept for analysis and an optional balance loss."""
        logits = self.logits(fused, reliability)
        if self.training and self.noise > 0:
            logits = logits + self.noise * torch.randn_like(logits)
        top_vals, top_idx = torch.topk(logits, self.top_k, dim=-1)
        weights = torch.zeros_like(logits).scatter(-1, top_idx, torch.softmax(top_vals, dim=-1))
        return weights, logits
