"""What issue 15 asks of the voice, measured on held-out speakers of the real-affect corpus (qamoe.corpus.affect).

Per corpus (RAVDESS, EmoDB) on a split, from a model's valence on each clip's window:
  auc            AUC(valence; happy or calm vs angry, sad, fearful, disgust)    target >= 0.85 RAVDESS, 0.75 EmoDB
  happy_minus_negative   mean valence of happy clips - mean of the four negative emotions   target >= 1.0
  neutral_abs    |mean valence of neutral clips|                                 target <= 0.3
  mae, corr      against the map's targets (context, not targets)
and for speech_va the Spearman correlation of valence with the annotated valence (reported, no target).
The emotion of a clip comes from its id (the corpus's file name), never from a model input.

For the FER2013 faces (qamoe.corpus.fer; ids "fer2013/..."), from the label, which the valence map gives one
value per class (happy +2, neutral 0, the negative classes below 0):
  auc            AUC(valence; happy vs angry, sad, fear, disgust)               target >= 0.9
  happy_mean     mean valence of happy faces                                     target >= 1.0
  neutral_abs    |mean valence of neutral faces|                                 target <= 0.3
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from qamoe.corpus.affect import NEGATIVE, POSITIVE, emotion_and_intensity
from qamoe.fidelity import spearman
from qamoe.metrics import auc, pearson

TARGETS = {"ravdess": {"auc": 0.85}, "emodb": {"auc": 0.75}, "fer2013": {"auc": 0.9}}
GAP_TARGET, NEUTRAL_TARGET, HAPPY_FACE_TARGET = 1.0, 0.3, 1.0
DATASETS = ("ravdess", "emodb", "speech_va", "fer2013")


def emotion_of(key: str) -> str:
    """The emotion a clip id names ("" for the continuous clips)."""
    return emotion_and_intensity(key)[0]


def affect_rows(ids: np.ndarray, valence: np.ndarray, labels: np.ndarray) -> list[dict[str, Any]]:
    """One row per corpus present among `ids`, with the metrics above and whether each target is met."""
    keys = [str(k) for k in ids]
    rows = []
    for dataset in DATASETS:
        idx = np.array([i for i, k in enumerate(keys) if k.startswith(f"{dataset}/")], np.int64)
        if idx.size == 0:
            continue
        v, y = valence[idx].astype(np.float64), labels[idx].astype(np.float64)
        row: dict[str, Any] = {"dataset": dataset, "n": int(idx.size), "mae": float(np.mean(np.abs(v - y))),
                               "corr": pearson(v, y)}  # fmt: skip
        if dataset == "speech_va":
            row["spearman"] = spearman(v, y)
        elif dataset == "fer2013":
            row.update(_face_metrics(v, y))
        else:
            emotions = np.array([emotion_of(keys[i]) for i in idx])
            pos, neg = v[np.isin(emotions, POSITIVE)], v[np.isin(emotions, NEGATIVE)]
            happy, neutral = v[emotions == "happy"], v[emotions == "neutral"]
            row.update({
                "auc": auc(pos, neg),
                "happy_minus_negative": float(happy.mean() - neg.mean()) if happy.size and neg.size else np.nan,
                "neutral_abs": float(abs(neutral.mean())) if neutral.size else np.nan,
                "means": {e: float(v[emotions == e].mean()) for e in sorted(set(emotions.tolist()))},
            })  # fmt: skip
            row["met"] = {
                "auc": row["auc"] >= TARGETS[dataset]["auc"],
                "happy_minus_negative": row["happy_minus_negative"] >= GAP_TARGET,
                "neutral_abs": row["neutral_abs"] <= NEUTRAL_TARGET,
            }
        rows.append(row)
    return rows


def _face_metrics(v: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """FER2013's metrics; the class from the label: +2 happy, 0 neutral, < 0 the four negative ones."""
    happy, neutral, neg = v[y > 0], v[y == 0], v[y < 0]
    row: dict[str, Any] = {
        "auc": auc(happy, neg),
        "happy_mean": float(happy.mean()) if happy.size else np.nan,
        "happy_minus_negative": float(happy.mean() - neg.mean()) if happy.size and neg.size else np.nan,
        "neutral_abs": float(abs(neutral.mean())) if neutral.size else np.nan,
        "means": {"happy": float(happy.mean()) if happy.size else np.nan,
                  "neutral": float(neutral.mean()) if neutral.size else np.nan,
                  "negative": float(neg.mean()) if neg.size else np.nan},
    }  # fmt: skip
    row["met"] = {"auc": row["auc"] >= TARGETS["fer2013"]["auc"], "happy_mean": row["happy_mean"] >= HAPPY_FACE_TARGET,
                  "neutral_abs": row["neutral_abs"] <= NEUTRAL_TARGET}  # fmt: skip
    return row


def format_rows(rows: list[dict[str, Any]], title: str) -> str:
    """A markdown table of `affect_rows`."""
    header = "| corpus | n | AUC pos vs neg | happy - negative | happy mean | neutral abs | MAE | r | Spearman |"
    lines = [f"{title}", "", header, "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        def cell(name: str, r: Mapping[str, Any] = r) -> str:
            if name not in r:
                return ""
            ok = r.get("met", {}).get(name)
            return f"{r[name]:.3f}" + ("" if ok is None else (" ✔" if ok else " ✘"))

        lines.append(f"| {r['dataset']} | {r['n']} | {cell('auc')} | {cell('happy_minus_negative')} | "
                     f"{cell('happy_mean')} | {cell('neutral_abs')} | {r['mae']:.3f} | {r['corr']:.3f} | "
                     f"{cell('spearman')} |")
    return "\n".join(lines)
