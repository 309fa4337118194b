"""Reliability fidelity: does a modality's reliability score fall as that modality is corrupted?

For each modality and corruption, the test set is corrupted in that modality only, at every severity of the
grid; the score is Spearman's rank correlation between the per-sample severity and the per-sample reliability
of that modality, pooled over the grid (ties get average ranks). -1 is a perfect, monotone fall. The mean
reliability when the modality is entirely absent is reported beside it."""

from __future__ import annotations

from typing import Any

import numpy as np

from qamoe.data.featureset import FeatureSet
from qamoe.evaluation import predict
from qamoe.modality import MODALITIES
from qamoe.models import MultimodalModel
from qamoe.spectrum import SEVERITY_GRID, Condition, ModalityCorruption, apply_condition
from qamoe.training import noise_stats

PROBED = ("gaussian_noise", "random_missing")


def average_ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), np.float64)
    ranks[order] = np.arange(len(x), dtype=np.float64)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return sums[inverse] / counts[inverse]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = average_ranks(np.asarray(a, float)), average_ranks(np.asarray(b, float))
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def absent_last_ceiling(severity: np.ndarray, observed: np.ndarray) -> float:
    """The most negative Spearman(severity, r) any reliability score can reach on these rows, given that it
    ranks a row whose modality is absent no higher than a row where the modality is present.

    Rows of an absent modality carry the same input at every severity, so they get one and the same score;
    a score that ranks them lowest (as an absent camera must be: docs/MODEL.md, "Absent modalities") adds a
    block of tied lowest ranks spread over all severities, which no model can order. The ideal score on the
    present rows is `-severity` (equal severities tied); the absent block sits either below every present
    row or tied with the most severe present rows, whichever correlates more negatively. NaN without present
    rows."""
    sev = np.asarray(severity, np.float64)
    seen = np.asarray(observed, bool)
    if sev.shape != seen.shape:
        raise ValueError(f"severity {sev.shape} and observed {seen.shape} differ in shape")
    if not seen.any():
        return float("nan")
    lowest = -sev[seen].max()
    rhos = [spearman(sev, np.where(seen, -sev, fill)) for fill in (lowest - 1.0, lowest)]
    rhos = [r for r in rhos if not np.isnan(r)]
    return min(rhos) if rhos else float("nan")


def reliability_fidelity(model: MultimodalModel, test_set: FeatureSet, *, seed: int = 0) -> list[dict[str, Any]]:
    stats = noise_stats(model)
    rows = []
    for mi, m in enumerate(MODALITIES):
        absent = Condition("fidelity", f"{m}:absent", {}, {m: (ModalityCorruption("modality_absence", 1.0),)})
        r_absent = predict(model, apply_condition(test_set, absent, np.random.default_rng([seed, mi]), stats))
        for ci, corruption in enumerate(PROBED):
            sev, rel = [], []
            for si, s in enumerate(SEVERITY_GRID):
                cond = Condition("fidelity", f"{m}:{corruption}={s}", {}, {m: (ModalityCorruption(corruption, s),)})
                rng = np.random.default_rng([seed, mi, ci, si])
                pred = predict(model, apply_condition(test_set, cond, rng, stats))
                sev.append(np.full(len(test_set), s))
                rel.append(pred.reliability[str(m)])
            rows.append(
                {
                    "modality": str(m),
                    "corruption": corruption,
                    "spearman": spearman(np.concatenate(sev), np.concatenate(rel)),
                    "rel_clean": float(np.mean(rel[0])),
                    "rel_at_0.9": float(np.mean(rel[-1])),
                    "rel_absent": float(np.mean(r_absent.reliability[str(m)])),
                }
            )
    return rows
