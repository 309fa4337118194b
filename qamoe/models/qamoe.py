"""QA-MoE: quality-aware mixture of experts over Gaussian modality representations."""

from __future__ import annotations

import torch
from torch import nn

from qamoe.config import ModelConfig
from qamoe.layers import DualHead, GaussianReliability, GLUExperts, PriorFallback, QualityAwareRouter
from qamoe.layers.head import VALENCE_RANGE
from qamoe.losses import balance_term, gaussian_nll, task_terms
from qamoe.modality import MODALITIES, Modality
from qamoe.models.base import MultimodalModel, Tensors
from qamoe.models.output import ModelOutput

Gaussians = dict[Modality, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


class QAMoE(MultimodalModel):
    """encode -> reliability -> fallback -> route -> experts -> head (docs/MODEL.md has the equations).

    The ablations are this class with `quality_gate=False` (router sees content only) or `prior_fallback=False`
    (h_m = r_m mu_m)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        d, n_mod = config.d_model, len(MODALITIES)
        absent_max = config.absent_variance == "max"
        self.gaussians = nn.ModuleDict(
            {str(m): GaussianReliability(d_model=d, absent_max_variance=absent_max) for m in MODALITIES}
        )
        self.priors = nn.ModuleDict(
            {str(m): PriorFallback(d_model=d, enabled=config.prior_fallback) for m in MODALITIES}
        )
        self.router = QualityAwareRouter(
            in_dim=d * n_mod,
            n_modalities=n_mod,
            n_experts=config.n_experts,
            top_k=config.top_k,
            quality_gate=config.quality_gate,
            noise=config.router_noise,
            standardise=config.router_logits == "standardised",
        )
        self.experts = GLUExperts(
            in_dim=d * n_mod,
            hidden=config.expert_hidden,
            out_dim=d,
            n_experts=config.n_experts,
            dropout=config.dropout,
        )
        self.head = DualHead(d_model=d)
        # unimodal heads: the reliability target under "unimodal_nll", an auxiliary L1 under "clean_recon"
        self.unimodal = nn.ModuleDict({str(m): nn.Linear(d, 1) for m in MODALITIES})
        self.needs_clean_targets = config.reliability_objective == "clean_recon"

    def reliability(self, feats: Tensors, masks: Tensors) -> Gaussians:
        """Per modality: (mu [B, d], log_sigma2 [B], r [B])."""
        encoded = self.encode(feats, masks)
        return {m: self.gaussians[str(m)](*encoded[m]) for m in MODALITIES}

    def route(self, gauss: Gaussians) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> fused [B, M*d], reliabilities [B, M], router weights [B, E], router logits [B, E]."""
        fused = torch.cat([self.priors[str(m)](gauss[m][0], gauss[m][2]) for m in MODALITIES], dim=-1)
        rel = torch.stack([gauss[m][2] for m in MODALITIES], dim=-1)
        weights, logits = self.router(fused, rel)
        return fused, rel, weights, logits

    def forward(self, feats: Tensors, masks: Tensors) -> ModelOutput:
        gauss = self.reliability(feats, masks)
        fused, _, weights, logits = self.route(gauss)
        valence, log_var = self.head(self.experts(fused, weights))
        aux: dict[str, torch.Tensor] = {"router_logits": logits}
        for m in MODALITIES:
            aux[f"{m}_mu"], aux[f"{m}_log_sigma2"] = gauss[m][0], gauss[m][1]
        return ModelOutput(
            valence=valence,
            log_variance=log_var,
            reliability={m: gauss[m][2] for m in MODALITIES},
            router_weights=weights,
            aux=aux,
        )

    def loss_terms(
        self,
        out: ModelOutput,
        labels: torch.Tensor,
        *,
        clean_feats: Tensors | None = None,
        clean_masks: Tensors | None = None,
    ) -> dict[str, torch.Tensor]:
        terms = task_terms(out.valence, out.log_variance, labels)
        terms["balance"] = balance_term(out.aux["router_logits"], out.router_weights)
        preds = self._unimodal_preds(out)
        if self.config.reliability_objective == "unimodal_nll":
            terms["reliability"] = torch.stack(
                [gaussian_nll(labels, preds[m], out.aux[f"{m}_log_sigma2"]).mean() for m in MODALITIES]
            ).mean()
        else:
            if clean_feats is None or clean_masks is None:
                raise ValueError("reliability_objective='clean_recon' needs the clean batch (clean_feats/masks)")
            terms["reliability"] = self._clean_recon_nll(out, clean_feats, clean_masks)
            terms["unimodal_l1"] = torch.stack([torch.abs(labels - preds[m]).mean() for m in MODALITIES]).mean()
        return terms

    def _unimodal_preds(self, out: ModelOutput) -> dict[Modality, torch.Tensor]:
        """A sentiment prediction from each mu_m alone."""
        preds = {}
        for m in MODALITIES:
            pred = self.unimodal[str(m)](out.aux[f"{m}_mu"]).squeeze(-1)
            preds[m] = VALENCE_RANGE * torch.tanh(pred / VALENCE_RANGE)
        return preds

    def _clean_recon_nll(self, out: ModelOutput, clean_feats: Tensors, clean_masks: Tensors) -> torch.Tensor:
        """sigma_m^2 regresses the corruption-induced error of the representation, (1/d)||mu_m - mu_m(clean)||^2,
        learned without quality labels. The error is a stop-gradient target: pulling mu_m towards the clean
        representation through a 1/sigma^2-scaled loss lets the (near-zero) error of clean samples blow the
        gradient up by up to e^8 and starve the task loss under gradient clipping (measured: docs/MODEL.md)."""
        with torch.no_grad():
            target = self.reliability(clean_feats, clean_masks)
        losses = []
        for m in MODALITIES:
            sq_err = ((out.aux[f"{m}_mu"].detach() - target[m][0]) ** 2).mean(dim=-1)
            log_s2 = out.aux[f"{m}_log_sigma2"]
            losses.append((0.5 * (torch.exp(-log_s2) * sq_err + log_s2)).mean())
        return torch.stack(losses).mean()
