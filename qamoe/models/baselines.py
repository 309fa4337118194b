"""Baselines in the same harness, on the same encoders and features: late fusion and early fusion."""

from __future__ import annotations

import torch
from torch import nn

from qamoe.config import ModelConfig
from qamoe.layers import DualHead
from qamoe.losses import task_terms
from qamoe.modality import MODALITIES
from qamoe.models.base import MultimodalModel, Tensors
from qamoe.models.output import ModelOutput


def _no_router(batch: int, ref: torch.Tensor) -> torch.Tensor:
    return ref.new_zeros((batch, 0))


class LateFusion(MultimodalModel):
    """One dual head per modality; the prediction is the mean of the heads of the modalities present
    (presence = any valid step). Each head is also trained on its own, as late fusion is."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.heads = nn.ModuleDict({str(m): DualHead(d_model=config.d_model) for m in MODALITIES})

    def forward(self, feats: Tensors, masks: Tensors) -> ModelOutput:
        encoded = self.encode(feats, masks)
        preds, log_vars, present = [], [], []
        for m in MODALITIES:
            v, lv = self.heads[str(m)](encoded[m][0])
            preds.append(v)
            log_vars.append(lv)
            present.append(masks[m].any(dim=-1).to(v.dtype))
        v, lv, p = torch.stack(preds, -1), torch.stack(log_vars, -1), torch.stack(present, -1)
        n = p.sum(-1).clamp_min(1.0)
        valence = (v * p).sum(-1) / n
        # variance of an average of independent predictions; all-absent rows fall back to the heads' mean
        var = torch.where(p.sum(-1) > 0, (torch.exp(lv) * p).sum(-1) / n**2, torch.exp(lv).mean(-1))
        return ModelOutput(
            valence=valence,
            log_variance=torch.log(var),
            reliability={m: p[:, i] for i, m in enumerate(MODALITIES)},
            router_weights=_no_router(v.shape[0], v),
            aux={"unimodal": v, "present": p, "unimodal_log_var": lv},
        )

    def loss_terms(self, out: ModelOutput, labels: torch.Tensor, **_: object) -> dict[str, torch.Tensor]:
        terms = task_terms(out.valence, out.log_variance, labels)
        p = out.aux["present"]
        per_head = torch.abs(out.aux["unimodal"] - labels.unsqueeze(-1)) * p
        terms["unimodal_l1"] = per_head.sum() / p.sum().clamp_min(1.0)
        return terms


class EarlyFusion(MultimodalModel):
    """Concatenate the modality representations (and their coverages) and regress with an MLP: the fusion
    mechanism is the only difference from QA-MoE, since the encoders are the same."""

    def __init__(self, config: ModelConfig, *, hidden: int = 256) -> None:
        super().__init__(config)
        d, n_mod = config.d_model, len(MODALITIES)
        self.mlp = nn.Sequential(
            nn.Linear(n_mod * (d + 1), hidden),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(hidden, d),
        )
        self.head = DualHead(d_model=d)

    def forward(self, feats: Tensors, masks: Tensors) -> ModelOutput:
        encoded = self.encode(feats, masks)
        parts = [torch.cat([encoded[m][0], encoded[m][1].unsqueeze(-1)], -1) for m in MODALITIES]
        valence, log_var = self.head(self.mlp(torch.cat(parts, -1)))
        return ModelOutput(
            valence=valence,
            log_variance=log_var,
            reliability={m: masks[m].any(dim=-1).to(valence.dtype) for m in MODALITIES},
            router_weights=_no_router(valence.shape[0], valence),
        )

    def loss_terms(self, out: ModelOutput, labels: torch.Tensor, **_: object) -> dict[str, torch.Tensor]:
        return task_terms(out.valence, out.log_variance, labels)
