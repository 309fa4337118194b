"""Evaluation of one checkpoint over named spectrum protocols ("One-Checkpoint-for-All")."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from qamoe.batching import batches, to_tensors
from qamoe.data.featureset import FeatureSet
from qamoe.metrics import regression_metrics
from qamoe.modality import MODALITIES
from qamoe.models import MultimodalModel
from qamoe.spectrum import Condition, apply_condition, get_protocol
from qamoe.training import noise_stats


@dataclass(frozen=True)
class Predictions:
    valence: np.ndarray  # [N]
    log_variance: np.ndarray  # [N]
    reliability: dict[str, np.ndarray]  # modality name -> [N]
    router_weights: np.ndarray  # [N, E]


@torch.no_grad()
def predict(model: MultimodalModel, fs: FeatureSet, batch_size: int = 2048) -> Predictions:
    model.eval()
    parts: dict[str, list[np.ndarray]] = {"valence": [], "log_variance": [], "router": []}
    rel: dict[str, list[np.ndarray]] = {str(m): [] for m in MODALITIES}
    for idx in batches(len(fs), batch_size):
        feats, masks, _ = to_tensors(fs.subset(idx))
        out = model(feats, masks)
        parts["valence"].append(out.valence.numpy())
        parts["log_variance"].append(out.log_variance.numpy())
        parts["router"].append(out.router_weights.numpy())
        for m in MODALITIES:
            rel[str(m)].append(out.reliability[m].numpy())
    return Predictions(
        valence=np.concatenate(parts["valence"]),
        log_variance=np.concatenate(parts["log_variance"]),
        reliability={k: np.concatenate(v) for k, v in rel.items()},
        router_weights=np.concatenate(parts["router"]),
    )


def evaluate_conditions(
    model: MultimodalModel, test_set: FeatureSet, conditions: Iterable[Condition], *, seed: int = 0
) -> list[dict[str, Any]]:
    """One row per condition: protocol, condition name, its params, the MMSA metrics, and the mean reliability
    per modality. Each condition's corruption is seeded by (seed, its index), so runs are reproducible and every
    model sees exactly the same corrupted test set."""
    scales = noise_stats(model)
    rows = []
    for i, cond in enumerate(conditions):
        corrupted = apply_condition(test_set, cond, np.random.default_rng([seed, 1000 + i]), scales)
        pred = predict(model, corrupted)
        row: dict[str, Any] = {"protocol": cond.protocol, "condition": cond.name, **cond.params}
        row.update(regression_metrics(pred.valence, corrupted.labels))
        for m, r in pred.reliability.items():
            row[f"rel_{m}"] = float(np.mean(r))
        rows.append(row)
    return rows


def evaluate_protocols(
    model: MultimodalModel, test_set: FeatureSet, protocols: Iterable[str], *, seed: int = 0
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for p in protocols:
        rows.extend(evaluate_conditions(model, test_set, get_protocol(p), seed=seed))
    return rows
