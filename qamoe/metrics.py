"""Regression metrics for multimodal sentiment analysis, with the MMSA toolkit's (thuiar/MMSA) definitions.

Published MOSI/MOSEI numbers are only comparable when computed the same way, and the usual variants differ in
small but consequential details (Has0 vs Non0 binarisation, whether MAE is clipped, how Acc-7 rounds). This
module follows MMSA exactly and needs only numpy (weighted F1 is computed here, matching sklearn's
`f1_score(average="weighted")` with its default zero_division).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import numpy as np

from qamoe.errors import DataError

logger = logging.getLogger(__name__)

METRIC_KEYS: tuple[str, ...] = ("has0_acc2", "has0_f1", "non0_acc2", "non0_f1", "acc5", "acc7", "mae", "corr")

# Shown as percentages with 2 decimals in `format_metrics`; the rest (MAE, Corr) as plain numbers with 3.
_PERCENT_KEYS = frozenset({"has0_acc2", "has0_f1", "non0_acc2", "non0_f1", "acc5", "acc7"})


def regression_metrics(preds: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """MMSA regression metrics; accuracies and F1 as fractions in [0, 1].

    Has0: negative (< 0) vs non-negative (>= 0) over all samples. Non0: negative vs positive with label == 0
    dropped (nan when every label is 0). Acc-7 / Acc-5: clip both sides to [-3, 3] / [-2, 2], round half to
    even, compare. MAE is unclipped; Corr is Pearson (nan when either side is constant)."""
    p, y = _as_vectors(preds, labels)
    non0 = y != 0
    out = {
        "has0_acc2": _accuracy(p >= 0, y >= 0),
        "has0_f1": weighted_f1(y >= 0, p >= 0),
        "non0_acc2": _accuracy(p[non0] > 0, y[non0] > 0) if non0.any() else math.nan,
        "non0_f1": weighted_f1(y[non0] > 0, p[non0] > 0) if non0.any() else math.nan,
        "acc5": _multiclass_acc(p, y, bound=2.0),
        "acc7": _multiclass_acc(p, y, bound=3.0),
        "mae": float(np.mean(np.abs(p - y))),
        "corr": pearson(p, y),
    }
    if not non0.any():
        logger.warning("every label is 0: Non0 Acc-2 and F1 are undefined (nan)")
    return out


def _as_vectors(preds: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flatten to float64 (as MMSA's `.view(-1)`) and refuse what would give silently wrong numbers."""
    p = np.asarray(preds, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    if p.shape != y.shape:
        raise DataError(f"{p.size} predictions for {y.size} labels: pass predictions and labels of one split")
    if p.size == 0:
        raise DataError("no predictions to evaluate: the split is empty")
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(y))):
        raise DataError("predictions or labels contain NaN/inf: check the model for divergence and labels")
    return p, y


def _accuracy(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean(pred == truth))


def _multiclass_acc(p: np.ndarray, y: np.ndarray, *, bound: float) -> float:
    rounded_p = np.round(np.clip(p, -bound, bound))
    rounded_y = np.round(np.clip(y, -bound, bound))
    return float(np.mean(rounded_p == rounded_y))


def weighted_f1(truth: np.ndarray, pred: np.ndarray) -> float:
    """Per-class F1 averaged with weights = each class's support in `truth` (sklearn's average="weighted").

    Classes are those seen in either array; a class never predicted has precision 0 and so F1 0, and a class
    only predicted has support 0 and so no weight, as sklearn does with its default zero_division."""
    truth = np.asarray(truth).reshape(-1)
    pred = np.asarray(pred).reshape(-1)
    if truth.shape != pred.shape or truth.size == 0:
        raise DataError(f"weighted F1 needs two equal, non-empty arrays, got {truth.shape} and {pred.shape}")
    total = 0.0
    for cls in np.union1d(truth, pred):
        is_true, is_pred = truth == cls, pred == cls
        tp = float(np.sum(is_true & is_pred))
        support = float(np.sum(is_true))
        # F1 = 2PR / (P + R) = 2TP / (2TP + FP + FN); when TP = 0 it is 0 however the ratios are defined.
        denom = float(np.sum(is_pred)) + support
        f1 = 2.0 * tp / denom if tp > 0 else 0.0
        total += support * f1
    return total / truth.size


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; nan (no exception, no warning) when either side is constant or has < 2 values."""
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise DataError(f"correlation needs two equal-length arrays, got {a.size} and {b.size} values")
    # Tested on the raw values: a constant like 0.1 leaves round-off residue after centring, not exact zeros.
    if a.size < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return math.nan
    da, db = a - a.mean(), b - b.mean()
    norm = math.sqrt(float(np.dot(da, da)) * float(np.dot(db, db)))
    # Clipped because rounding can carry |r| a hair past 1 for perfectly (anti)correlated inputs.
    return float(np.clip(np.dot(da, db) / norm, -1.0, 1.0))


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Area under the ROC curve of a score that should rank `positive` above `negative`: the probability that a
    random positive scores higher than a random negative, ties counting half (Mann-Whitney U / (n_pos n_neg)).
    NaN when either group is empty."""
    pos, neg = np.asarray(positive, np.float64).ravel(), np.asarray(negative, np.float64).ravel()
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def format_metrics(d: Mapping[str, float]) -> str:
    """One log line: accuracies and F1 as percentages with 2 decimals, MAE and Corr with 3; others last."""
    keys = [k for k in METRIC_KEYS if k in d] + [k for k in d if k not in METRIC_KEYS]
    parts = []
    for k in keys:
        value = float(d[k])
        parts.append(f"{k}={100.0 * value:.2f}" if k in _PERCENT_KEYS else f"{k}={value:.3f}")
    return " ".join(parts)
