"""Evaluation of checkpoints trained on the live-feature corpus (tools/build_corpus.py, docs/CORPUS.md).

What tools/evaluate_live.py reports (docs/MODEL_CARD.md):
  - `benchmark_rows`   the MMSA metrics per dataset (ids prefixed "mosei/", "mosi/") and text source: the gold
                       transcripts (split test) and the live ASR on synthesised speech (split test_asr);
  - `raw_fidelity_rows` for each raw-media corruption (`qamoe.corpus.raw_corruptions`, split test_raw), the
                       Spearman correlation between the corruption's severity and the reliability of the
                       modality it hits, pooled over the "#raw" twins and their clean rows (severity 0), with the
                       mean reliability and MAE per level;
  - `shuffle_check`    whether the reliabilities matter: the metrics with each sample's reliability vector
                       replaced by another sample's (a seeded permutation), against the model's own.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qamoe.batching import batches, to_tensors
from qamoe.data.featureset import FeatureSet
from qamoe.errors import ConfigError
from qamoe.evaluation import predict
from qamoe.fidelity import absent_last_ceiling, spearman
from qamoe.metrics import regression_metrics
from qamoe.modality import MODALITIES, Modality
from qamoe.models import MultimodalModel

DATASETS = ("mosei", "mosi")
RAW_SUFFIX = "#raw"


def by_dataset(fs: FeatureSet) -> dict[str, FeatureSet]:
    """The samples of each dataset (id prefix "<dataset>/"), for the datasets present."""
    ids = [str(i) for i in fs.ids]
    out = {}
    for d in DATASETS:
        keep = np.array([i for i, k in enumerate(ids) if k.startswith(f"{d}/")], np.int64)
        if keep.size:
            out[d] = fs.subset(keep)
    return out


def benchmark_rows(model: MultimodalModel, data: Mapping[str, FeatureSet]) -> list[dict[str, Any]]:
    """One row per (dataset, text source): n and the MMSA metrics."""
    rows = []
    for split, text in (("test", "gold"), ("test_asr", "asr")):
        if split not in data:
            continue
        for dataset, fs in by_dataset(data[split]).items():
            pred = predict(model, fs)
            rows.append({"dataset": dataset, "text": text, "n": len(fs),
                         **regression_metrics(pred.valence, fs.labels)})
    return rows


def read_provenance(corpus: Path) -> dict[str, dict[str, Any]]:
    """A corpus' provenance.jsonl (tools/build_corpus.py), by sample id."""
    path = corpus / "provenance.jsonl"
    if not path.is_file():
        raise ConfigError(f"{path} not found: --corpus must be a folder written by tools/build_corpus.py")
    return {r["id"]: r for r in map(json.loads, path.read_text(encoding="utf-8").splitlines())}


def same_input(a: FeatureSet, i: int, b: FeatureSet, j: int, m: Modality) -> bool:
    """Whether row i of `a` and row j of `b` give the model the same input for modality m (features and mask;
    padding beyond the shorter of the two sequences must be empty)."""
    fa, fb, ma, mb = a.feats[m][i], b.feats[m][j], a.masks[m][i], b.masks[m][j]
    t = min(len(ma), len(mb))
    if ma[t:].any() or mb[t:].any():
        return False
    return bool(np.array_equal(ma[:t], mb[:t]) and np.array_equal(fa[:t][ma[:t]], fb[:t][mb[:t]]))


def raw_fidelity_rows(model: MultimodalModel, test: FeatureSet, test_raw: FeatureSet,
                      raw_of: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per raw corruption kind: Spearman(severity, reliability of its modality) over its twins (severity as
    drawn) and their clean rows (severity 0); the same for every other modality (should be ~0); mean
    reliability and MAE per level. `rho_{m}_observed`: the same over the twins whose clean row has at least
    one step of m, with the mean reliability per level over those twins (`rel_{m}_observed@level`);
    `rho_{m}_ceiling`: the most negative value `rho_{m}` could take for any score that ranks an absent m
    lowest (qamoe.fidelity.absent_last_ceiling); `n_unchanged_{m}`: twins whose input of m equals their clean
    row's. `raw_of[id]`: the twin's {"kind", "severity"} (provenance.jsonl)."""
    clean_pos = {str(k): i for i, k in enumerate(test.ids)}
    p_clean, p_raw = predict(model, test), predict(model, test_raw)
    groups: dict[str, list[tuple[int, int, float]]] = defaultdict(list)
    for j, k in enumerate(map(str, test_raw.ids)):
        base = k[: -len(RAW_SUFFIX)]
        if k in raw_of and base in clean_pos:
            groups[raw_of[k]["kind"]].append((clean_pos[base], j, float(raw_of[k]["severity"])))
    rows = []
    for kind, members in sorted(groups.items()):
        ci = np.array([c for c, _, _ in members])
        ri = np.array([r for _, r, _ in members])
        sev = np.concatenate([np.zeros(len(members)), [s for _, _, s in members]])
        row: dict[str, Any] = {"kind": kind, "n_twins": len(members)}
        for m in MODALITIES:
            rel = np.concatenate([p_clean.reliability[str(m)][ci], p_raw.reliability[str(m)][ri]])
            row[f"rho_{m}"] = spearman(sev, rel)
            # the same over the twins whose clean row observes m at all: a clean row without a face has no
            # vision to damage, and its (correctly) near-zero r at severity 0 says nothing about the corruption
            seen = np.tile(test.masks[m][ci].any(axis=1), 2)
            row[f"rho_{m}_observed"] = spearman(sev[seen], rel[seen])
            row[f"n_observed_{m}"] = int(seen.sum() // 2)
            # twins whose input of m is bit-identical to their clean row's (no face, clean or corrupted):
            # no function of the input can order their two rows by severity
            row[f"n_unchanged_{m}"] = int(sum(same_input(test, c, test_raw, r, m) for c, r in zip(ci, ri)))
            # the best any score could do over all twins while ranking an absent stream lowest
            row[f"rho_{m}_ceiling"] = absent_last_ceiling(sev, seen)
            for level in sorted(set(sev.tolist())):
                at = sev == level
                row[f"rel_{m}@{level:g}"] = float(rel[at].mean())
                hit = at & seen
                row[f"rel_{m}_observed@{level:g}"] = float(rel[hit].mean()) if hit.any() else np.nan
        pred = np.concatenate([p_clean.valence[ci], p_raw.valence[ri]])
        labels = np.concatenate([test.labels[ci], test_raw.labels[ri]])
        for level in sorted(set(sev.tolist())):
            row[f"mae@{level:g}"] = float(np.abs(pred[sev == level] - labels[sev == level]).mean())
        rows.append(row)
    return rows


@torch.no_grad()
def predict_shuffled(model: MultimodalModel, fs: FeatureSet, seed: int = 0, *,
                     perm: np.ndarray | None = None, batch_size: int = 2048) -> np.ndarray:
    """Valence with each sample's reliability vector taken from another sample (one seeded permutation of the
    whole set; the encoded content stays the sample's own). QA-MoE models only (they expose `reliability`,
    `route`, `experts`, `head`)."""
    model.eval()
    gauss: dict[Modality, list[tuple[torch.Tensor, ...]]] = defaultdict(list)
    for idx in batches(len(fs), batch_size):
        feats, masks, _ = to_tensors(fs.subset(idx))
        g = model.reliability(feats, masks)
        for m in MODALITIES:
            gauss[m].append(g[m])
    full = {m: tuple(torch.cat([part[i] for part in gauss[m]]) for i in range(3)) for m in MODALITIES}
    perm = torch.from_numpy(np.random.default_rng(seed).permutation(len(fs)) if perm is None else perm)
    shuffled = {m: (mu, ls, r[perm]) for m, (mu, ls, r) in full.items()}
    fused, _, weights, _ = model.route(shuffled)
    valence, _ = model.head(model.experts(fused, weights))
    return valence.numpy()


def shuffle_check(model: MultimodalModel, fs: FeatureSet, *, seed: int = 0) -> dict[str, float]:
    """MAE / Corr / Non0 Acc-2 with the model's own reliabilities and with shuffled ones."""
    own = regression_metrics(predict(model, fs).valence, fs.labels)
    shuffled = regression_metrics(predict_shuffled(model, fs, seed), fs.labels)
    out = {"n": len(fs)}
    for k in ("mae", "corr", "non0_acc2"):
        out[f"{k}_own"], out[f"{k}_shuffled"] = own[k], shuffled[k]
    return out
