"""Result files: per-condition CSV, a Markdown summary (mean +- std over seeds) and a PNG plot.

Every file carries its provenance (git commit, command, configs): CSV and Markdown in a header, the PNG in its
text metadata and a footer line."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

SUMMARY_COLUMNS = (
    ("clean MAE", "clean", "mae"),
    ("clean Corr", "clean", "corr"),
    ("clean Acc-7", "clean", "acc7"),
    ("clean Non0 Acc-2", "clean", "non0_acc2"),
    ("joint grid MAE", "joint", "mae"),
    ("noise MAE", "noise", "mae"),
    ("random-missing MAE", "random_missing", "mae"),
    ("missing-pattern MAE", "missing_patterns", "mae"),
    ("additive-noise MAE", "additive_noise", "mae"),
)
_PCT = {"acc7", "non0_acc2", "has0_acc2", "acc5", "non0_f1", "has0_f1"}


def write_csv(rows: Sequence[Mapping[str, Any]], path: Path, provenance: Mapping[str, Any]) -> Path:
    keys: list[str] = []
    for row in rows:
        keys.extend(k for k in row if k not in keys)
    with path.open("w", newline="", encoding="utf-8") as f:
        f.write(f"# provenance: {json.dumps(provenance, sort_keys=True)}\n")
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    return path


def per_seed_means(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str, str], dict[int, float]]:
    """(method, protocol, metric) -> {seed: mean of the metric over the protocol's conditions}."""
    acc: dict[tuple[str, str, str, int], list[float]] = defaultdict(list)
    for row in rows:
        if row["protocol"] == "fidelity":
            continue
        for metric in ("mae", "corr", "acc7", "non0_acc2", "has0_acc2", "non0_f1"):
            if metric in row:
                acc[(row["method"], row["protocol"], metric, row["seed"])].append(float(row[metric]))
    out: dict[tuple[str, str, str], dict[int, float]] = defaultdict(dict)
    for (method, protocol, metric, seed), values in acc.items():
        out[(method, protocol, metric)][seed] = float(np.mean(values))
    return out


def summary_table(rows: Sequence[Mapping[str, Any]], methods: Sequence[str]) -> str:
    """Markdown: one row per method, mean +- std over seeds of each summary column."""
    means = per_seed_means(rows)
    present = [c for c in SUMMARY_COLUMNS if any((m, c[1], c[2]) in means for m in methods)]
    lines = ["| method | " + " | ".join(c[0] for c in present) + " |", "|---|" + "---|" * len(present)]
    for method in methods:
        cells = []
        for _, protocol, metric in present:
            values = list(means.get((method, protocol, metric), {}).values())
            cells.append(_fmt(values, metric))
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def fidelity_table(rows: Sequence[Mapping[str, Any]], methods: Sequence[str]) -> str:
    """Markdown: per method, Spearman(severity, reliability) for each modality x corruption (mean +- std over
    seeds), and the mean reliability of an absent modality."""
    fid = [r for r in rows if r["protocol"] == "fidelity"]
    conds = sorted({r["condition"] for r in fid})
    if not fid:
        return ""
    mods = sorted({r["modality"] for r in fid})
    head = "| method | " + " | ".join(f"ρ {c}" for c in conds) + " | " + " | ".join(f"r {m} absent" for m in mods)
    lines = [head + " |", "|---|" + "---|" * (len(conds) + len(mods))]
    for method in methods:
        mine = [r for r in fid if r["method"] == method]
        if not mine:
            continue
        cells = [_fmt([r["spearman"] for r in mine if r["condition"] == c], "rho") for c in conds]
        cells += [
            _fmt([r["rel_absent"] for r in mine if r["modality"] == m and r["corruption"] == "random_missing"], "r")
            for m in mods
        ]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt(values: Sequence[float], metric: str) -> str:
    if not values:
        return "–"
    scale = 100.0 if metric in _PCT else 1.0
    digits = 1 if metric in _PCT else 3
    mean, std = np.mean(values) * scale, np.std(values) * scale
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def curve(rows: Sequence[Mapping[str, Any]], method: str, protocol: str, x_key: str, where=None):
    """x values, mean and std over seeds of MAE along one protocol's severity axis."""
    by_x: dict[float, dict[int, float]] = defaultdict(dict)
    for row in rows:
        if row["method"] == method and row["protocol"] == protocol and (where is None or where(row)):
            by_x[float(row[x_key])][row["seed"]] = float(row["mae"])
    xs = sorted(by_x)
    vals = [list(by_x[x].values()) for x in xs]
    return np.array(xs), np.array([np.mean(v) for v in vals]), np.array([np.std(v) for v in vals])


def plot(rows: Sequence[Mapping[str, Any]], methods: Sequence[str], path: Path, footer: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("noise", "lambda", None, "feature noise λ (variance-preserving)"),
        ("random_missing", "eta", None, "random missing rate η"),
        ("joint", "lambda", lambda r: float(r["lambda"]) == float(r["eta"]), "joint grid diagonal λ = η"),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(19, 4.4))
    for ax, (protocol, key, where, title) in zip(axes, panels, strict=False):
        for method in methods:
            x, mean, std = curve(rows, method, protocol, key, where)
            if len(x):
                ax.plot(x, mean, marker="o", ms=3, label=method)
                ax.fill_between(x, mean - std, mean + std, alpha=0.2)
        ax.set(title=title, xlabel="severity", ylabel="MAE (mean ± std over seeds)")
        ax.grid(alpha=0.3)
    _missing_bars(axes[3], rows, methods)
    axes[0].legend(fontsize=8)
    fig.text(0.01, 0.005, footer, fontsize=7, color="grey")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=110, metadata={"Description": footer})
    plt.close(fig)
    return path


def _missing_bars(ax, rows: Sequence[Mapping[str, Any]], methods: Sequence[str]) -> None:
    conds = sorted({r["condition"] for r in rows if r["protocol"] == "missing_patterns"}, key=len)
    width = 0.8 / max(len(methods), 1)
    for i, method in enumerate(methods):
        means = []
        for cond in conds:
            vals = [float(r["mae"]) for r in rows if r["method"] == method and r["condition"] == cond]
            means.append(np.mean(vals) if vals else np.nan)
        ax.bar(np.arange(len(conds)) + i * width, means, width, label=method)
    ax.set_xticks(np.arange(len(conds)) + 0.4 - width / 2)
    ax.set_xticklabels([c.replace("kept=", "") for c in conds], rotation=35, ha="right", fontsize=7)
    ax.set(title="modalities kept (7 fixed patterns)", ylabel="MAE")
    ax.grid(alpha=0.3, axis="y")
