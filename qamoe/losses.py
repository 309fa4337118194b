"""Loss terms. Models return them unweighted (`loss_terms`); the trainer weights and sums them.

Equations as implemented are in docs/MODEL.md."""

from __future__ import annotations

import torch


def gaussian_nll(target: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """Heteroscedastic regression loss (Kendall & Gal 2017), elementwise:
    0.5 * (target - mean)^2 / sigma^2 + 0.5 * log sigma^2 (the constant 0.5 log 2 pi dropped)."""
    return 0.5 * (torch.exp(-log_var) * (target - mean) ** 2 + log_var)


def task_terms(valence: torch.Tensor, log_var: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """L1 on the valence (the MMSA convention, matches the MAE metric) and a Gaussian NLL that trains the
    predictive variance around the *detached* valence, so the variance branch cannot trade accuracy of the mean
    for a smaller loss."""
    return {
        "task_l1": torch.mean(torch.abs(valence - labels)),
        "task_nll": torch.mean(gaussian_nll(labels, valence.detach(), log_var)),
    }


def balance_term(router_logits: torch.Tensor, router_weights: torch.Tensor) -> torch.Tensor:
    """Switch-Transformer load-balancing loss E * sum_e f_e P_e (f_e: share of top-k slots given to expert e,
    P_e: mean router probability). 1.0 when perfectly balanced. Off by default (PAPER.md: the prior fallback is
    the anti-collapse mechanism); kept so collapse can be tested for."""
    n_experts = router_logits.shape[-1]
    probs = torch.softmax(router_logits, dim=-1).mean(dim=0)
    selected = (router_weights > 0).to(router_logits.dtype)
    share = selected.sum(dim=0) / selected.sum().clamp_min(1.0)
    return n_experts * torch.sum(share * probs)
