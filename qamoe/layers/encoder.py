"""Per-modality temporal encoder over a masked feature sequence."""

from __future__ import annotations

import torch
from torch import nn

# Added to attention scores of invalid steps. Finite (not -inf) so an all-invalid row stays NaN-free in every
# backend; such rows are zeroed explicitly afterwards.
_MASK_BIAS = -1.0e4


class TemporalEncoder(nn.Module):
    """[B, T, D_in] features + [B, T] validity mask -> [B, d] pooled representation and [B] coverage.

    Projection, one residual depthwise-separable temporal convolution (local context: a few frames / tokens), and
    masked attention pooling. Deliberately small: the edge budget is a fraction of a millisecond for the whole
    model, and the window features are already high-level (BERT / MiniLM / MFCC / expression embeddings).
    Coverage (fraction of valid steps) is returned so that downstream heads can *see* missingness."""

    def __init__(self, *, in_dim: int, d_model: int, kernel: int = 3, dropout: float = 0.1) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, d_model)
        self.norm = nn.LayerNorm(d_model)
        self.dwconv = nn.Conv1d(d_model, d_model, kernel, padding=kernel // 2, groups=d_model)
        self.pwconv = nn.Linear(d_model, d_model)
        self.score = nn.Linear(d_model, 1, bias=False)  # softmax is shift-invariant: a bias would get no gradient
        self.drop = nn.Dropout(dropout)
        self.act = nn.GELU()

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, mean: torch.Tensor, std: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x: raw features; mean/std: the input standardisation (InputNorm's buffers).

        The scale is folded into the projection, W((x - mean) / std) + b = (W / std)(x - mean) + b: after the
        export's constant folding, one Sub + MatMul + Add per modality instead of five elementwise ops. The mean
        is subtracted first, not folded into the bias as b - (W / std) mean: a column that is constant in
        training (vision's face_present is 1 at every valid step) has std at the 1e-6 floor, so W / std is
        ~1e5 and the folded bias would cancel a 1e5-sized product in float32, leaving ~1e-2 of rounding noise
        that differs between torch and ONNX Runtime (docs/MODEL.md, "Export"). x - mean is exact there.
        Steps outside the mask are zeroed after the LayerNorm."""
        valid = mask if mask.dtype == torch.bool else mask > 0.5
        m = valid.to(x.dtype)
        m3 = m.unsqueeze(-1)  # [B, T, 1]
        h = self.norm(nn.functional.linear(x - mean, self.proj.weight / std, self.proj.bias)) * m3
        c = self.dwconv(h.transpose(1, 2)).transpose(1, 2)
        h = (h + self.drop(self.pwconv(self.act(c)))) * m3
        # The score is a MatMul with a [d, 1] matrix, then a Squeeze: ONNX Runtime's CPU MatMul with a 1-D right
        # operand costs ~4x as much (45 vs 11 us at T = 100). Invalid steps score exactly _MASK_BIAS: one Where,
        # where `s - 1e4 (1 - m)` took three nodes, with the same numbers (h is 0 there and the score has no
        # bias, so s was 0).
        scores = torch.where(valid, torch.matmul(h, self.score.weight.t()).squeeze(-1), _MASK_BIAS)
        attn = torch.softmax(scores, dim=-1)
        # h is 0 at every invalid step, so an all-absent modality pools to exactly 0 with no indicator.
        pooled = torch.matmul(attn.unsqueeze(1), h).squeeze(1)
        return pooled, m.mean(dim=1)
