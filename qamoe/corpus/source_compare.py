"""QA-MoE against its baselines per source, clean and with the stream that carries a source's signal degraded
(issue 15, part 4; tools/compare_sources.py).

A source is the dataset of a test row (its id prefix): `mosi` and `mosei` (the MOSI/MOSEI corpus: the signal
is in the words), `ravdess`, `emodb`, `speech_va` (the affect corpus: the words are a neutral or unrelated
sentence, the signal is in the voice). Each source is read under every `Degradation`: clean, the voice's
features noised (the spectrum's attenuating `gaussian_noise` at lambda 0.5 and 0.9: the signal fades towards the
training mean while noise grows) or gone, and the same for the words. Where a source's signal stream is degraded
and the other streams are clean, a model that gates by quality can lean on what is left, or at least stop
trusting what is broken; a source whose signal is not in the degraded stream shows what the damage costs
elsewhere. Every checkpoint sees exactly the same corrupted rows (the corruption's generator is seeded by
(seed, source, degradation), never by the model or the label).

Metrics per (checkpoint, source, degradation): for the MOSI/MOSEI rows `qamoe.metrics.regression_metrics`
(Non0 Acc-2, MAE, r); for the affect rows `qamoe.corpus.affect_eval.affect_rows` (AUC happy/calm vs negative,
happy - negative, |neutral|, Spearman for speech_va); and each modality's mean reliability.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from qamoe.corpus.affect_eval import affect_rows
from qamoe.data.featureset import FeatureSet
from qamoe.evaluation import predict
from qamoe.metrics import regression_metrics
from qamoe.modality import MODALITIES, Modality
from qamoe.models import MultimodalModel
from qamoe.spectrum.protocols import Condition, ModalityCorruption, apply_condition
from qamoe.training import noise_stats

TEXT_SOURCES = ("mosi", "mosei")
VOICE_SOURCES = ("ravdess", "emodb", "speech_va")
SOURCES = TEXT_SOURCES + VOICE_SOURCES
# the one number a summary shows per source: Non0 Acc-2 for the words, AUC (Spearman for the continuous clips)
HEADLINE = {"mosi": "non0_acc2", "mosei": "non0_acc2", "ravdess": "auc", "emodb": "auc", "speech_va": "spearman"}


@dataclass(frozen=True)
class Degradation:
    """One stream hit by one corruption at one severity (`modality` None: clean)."""

    name: str
    modality: Modality | None = None
    corruption: str = ""
    severity: float = 0.0

    def condition(self) -> Condition:
        steps = {m: () for m in MODALITIES}
        if self.modality is not None:
            steps[self.modality] = (ModalityCorruption(self.corruption, self.severity),)
        return Condition("degraded", self.name, {"stream": str(self.modality or ""), "severity": self.severity},
                         steps)  # fmt: skip


DEGRADATIONS: tuple[Degradation, ...] = (
    Degradation("clean"),
    Degradation("voice noise 0.5", Modality.AUDIO, "gaussian_noise", 0.5),
    Degradation("voice noise 0.9", Modality.AUDIO, "gaussian_noise", 0.9),
    Degradation("voice gone", Modality.AUDIO, "modality_absence", 1.0),
    Degradation("words noise 0.5", Modality.TEXT, "gaussian_noise", 0.5),
    Degradation("words noise 0.9", Modality.TEXT, "gaussian_noise", 0.9),
    Degradation("words gone", Modality.TEXT, "modality_absence", 1.0),
)


def source_of(key: str) -> str:
    return key.split("/", 1)[0]


def split_by_source(fs: FeatureSet) -> dict[str, FeatureSet]:
    """The rows of each known source present in `fs`, in `SOURCES` order (twins "#raw"/"#asr" are not test rows
    of this comparison and are left out)."""
    keys = [str(k) for k in fs.ids]
    out = {}
    for source in SOURCES:
        idx = np.array([i for i, k in enumerate(keys) if source_of(k) == source and "#" not in k], np.int64)
        if idx.size:
            out[source] = fs.subset(idx)
    return out


def source_metrics(source: str, ids: np.ndarray, valence: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The metrics of one source's rows (flat: numbers only)."""
    if source in TEXT_SOURCES:
        m = regression_metrics(valence, labels)
        return {k: m[k] for k in ("non0_acc2", "mae", "corr")}
    (row,) = affect_rows(ids, valence, labels)
    keys = ("auc", "happy_minus_negative", "neutral_abs", "mae", "corr", "spearman")
    return {k: float(row[k]) for k in keys if k in row}


def compare(model: MultimodalModel, sources: Mapping[str, FeatureSet],
            degradations: Sequence[Degradation] = DEGRADATIONS, *, seed: int = 0) -> list[dict[str, Any]]:  # fmt: skip
    """One row per (source, degradation) for one model."""
    scales = noise_stats(model)
    rows = []
    for si, (source, fs) in enumerate(sources.items()):
        for di, deg in enumerate(degradations):
            rng = np.random.default_rng([seed, SOURCES.index(source) if source in SOURCES else 100 + si, di])
            corrupted = apply_condition(fs, deg.condition(), rng, scales)
            pred = predict(model, corrupted)
            row: dict[str, Any] = {"source": source, "degradation": deg.name, "n": len(fs)}
            row.update(source_metrics(source, corrupted.ids, pred.valence, corrupted.labels))
            for m, r in pred.reliability.items():
                row[f"rel_{m}"] = float(np.mean(r))
            rows.append(row)
    return rows


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    v = np.asarray([x for x in values if not math.isnan(x)], np.float64)
    if v.size == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def _cell(values: Sequence[float], percent: bool) -> str:
    mean, sd = mean_sd(values)
    if math.isnan(mean):
        return "-"
    scale, digits = (100.0, 1) if percent else (1.0, 3)
    text = f"{mean * scale:.{digits}f}"
    return text + (f" ± {sd * scale:.{digits}f}" if len(values) > 1 else "")


def _grouped(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str, str], list[Mapping[str, Any]]]:
    groups: dict[tuple[str, str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["method"], r["source"], r["degradation"])].append(r)
    return groups


def clean_table(rows: Sequence[Mapping[str, Any]], methods: Sequence[str]) -> str:
    """Per method (mean ± sd over seeds), clean: each source's main numbers."""
    groups = _grouped(rows)
    present = [s for s in SOURCES if any(r["source"] == s for r in rows)]
    cols: list[tuple[str, str, str]] = []
    for s in present:
        if s in TEXT_SOURCES:
            cols += [(s, "non0_acc2", f"{s} Acc-2"), (s, "mae", f"{s} MAE")]
        elif s == "speech_va":
            cols += [(s, "spearman", "speech_va Spearman")]
        else:
            cols += [(s, "auc", f"{s} AUC"), (s, "happy_minus_negative", f"{s} happy-neg"),
                     (s, "neutral_abs", f"{s} abs(neutral)")]  # fmt: skip
    lines = ["| method | seeds | " + " | ".join(c[2] for c in cols) + " |", "|---|---|" + "---|" * len(cols)]
    for method in methods:
        cells = []
        seeds = 0
        for source, metric, _ in cols:
            group = groups.get((method, source, "clean"), [])
            seeds = max(seeds, len(group))
            cells.append(_cell([g[metric] for g in group if metric in g], metric == "non0_acc2"))
        lines.append(f"| {method} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def degraded_table(rows: Sequence[Mapping[str, Any]], methods: Sequence[str]) -> str:
    """Per source and method: its headline metric (HEADLINE) under each degradation, mean ± sd over seeds."""
    groups = _grouped(rows)
    names = list(dict.fromkeys(r["degradation"] for r in rows))
    lines = ["| source | metric | method | " + " | ".join(names) + " |", "|---|---|---|" + "---|" * len(names)]
    for source in SOURCES:
        metric = HEADLINE[source]
        for method in methods:
            if (method, source, "clean") not in groups:
                continue
            cells = [_cell([g[metric] for g in groups.get((method, source, n), []) if metric in g],
                           metric == "non0_acc2") for n in names]  # fmt: skip
            lines.append(f"| {source} | {metric} | {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def reliability_table(rows: Sequence[Mapping[str, Any]], methods: Sequence[str]) -> str:
    """Mean reliability of each degraded stream, clean and under its own degradations, per method and kind of
    row (MOSI/MOSEI, affect): does the quality score see the damage?"""
    groups = _grouped(rows)
    present = {r["degradation"] for r in rows}
    cols = [(m, n) for m in (str(Modality.AUDIO), str(Modality.TEXT))
            for n in ["clean", *(d.name for d in DEGRADATIONS if str(d.modality) == m)] if n in present]  # fmt: skip
    lines = ["| method | rows | " + " | ".join(f"r_{m}: {n}" for m, n in cols) + " |",
             "|---|---|" + "---|" * len(cols)]  # fmt: skip
    for method in methods:
        for kind, sources in (("MOSI/MOSEI", TEXT_SOURCES), ("affect", VOICE_SOURCES)):
            cells = [_cell([g[f"rel_{m}"] for s in sources for g in groups.get((method, s, n), [])], False)
                     for m, n in cols]  # fmt: skip
            if any(c != "-" for c in cells):
                lines.append(f"| {method} | {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
