#!/usr/bin/env python3
"""What an absent modality's reliability should be: the variance bound ("max", the default) or the variance
head's own estimate ("learned"), measured on one checkpoint in the same run (docs/MODEL.md, "Absent modalities").

  python tools/bench_absent.py --corpus runs/corpus-mosi     # the shipped checkpoint, or --checkpoint DIR

Both settings see exactly the same corrupted test sets (the spectrum's conditions are seeded). Prints, per
setting: the reliability published for a modality with no step (issue 7 asks <= 0.2), MAE on clean input, on
each of the 7 missing-modality patterns, on random missingness and on the joint noise x missing grid (means over
the grid), and, where the corpus has a `test_raw` split, the reliability-shuffle check (MAE with each sample's
own reliabilities and with another sample's) and the Spearman rho between a raw-media corruption's
severity and the reliability of the modality it hits (issue 6 asks <= -0.8). `--out FILE.md` also writes it."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from qamoe.checkpoint import load_checkpoint
from qamoe.checkpoints import SHIPPED
from qamoe.cli import run_main, setup_logging
from qamoe.corpus_eval import raw_fidelity_rows, read_provenance, shuffle_check
from qamoe.data.gather import concat_featuresets, read_shards
from qamoe.errors import ConfigError
from qamoe.evaluation import evaluate_protocols
from qamoe.provenance import machine

log = logging.getLogger("bench_absent")
SETTINGS = ("max", "learned")
PROTOCOLS = ("clean", "missing_patterns", "random_missing", "joint")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", type=Path, required=True, help="a corpus folder of tools/build_corpus.py")
    p.add_argument("--checkpoint", type=Path, default=SHIPPED)
    p.add_argument("--split", default="test")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="also write the table here (markdown)")
    return p.parse_args(argv)


def set_absent_variance(model: Any, setting: str) -> None:
    gaussians = getattr(model, "gaussians", None)
    if gaussians is None:
        raise ConfigError("--checkpoint must be a QA-MoE checkpoint (it has no reliability heads)")
    for g in gaussians.values():
        g.absent_max_variance = setting == "max"


def measure(model: Any, test: Any, seed: int) -> dict[str, float]:
    rows = evaluate_protocols(model, test, PROTOCOLS, seed=seed)
    out: dict[str, float] = {}
    for r in rows:
        if r["protocol"] == "missing_patterns":
            out[f"MAE {r['condition']}"] = r["mae"]
            # in a pattern, every modality not kept is absent on every sample: its mean r is the absent r
            for m in ("text", "audio", "vision"):
                if m not in r["kept"].split("+"):
                    out[f"r absent {m}"] = max(out.get(f"r absent {m}", 0.0), r[f"rel_{m}"])
    for proto in ("clean", "random_missing", "joint"):
        sel = [r for r in rows if r["protocol"] == proto]
        out[f"MAE {proto}" + ("" if proto == "clean" else " (mean)")] = float(np.mean([r["mae"] for r in sel]))
    out["Corr clean"] = next(r["corr"] for r in rows if r["protocol"] == "clean")
    return out


def raw_rho(model: Any, corpus: Path, test: Any) -> dict[str, float]:
    """rho(severity, r of the hit modality) per raw-media corruption kind; {} without a test_raw split."""
    from qamoe.corpus.raw_corruptions import MODALITY_OF

    if not any(corpus.glob("test_raw-*.npz")):
        return {}
    test_raw, _ = read_shards(corpus, split="test_raw")
    raw_of = {k: r["raw"] for k, r in read_provenance(corpus).items() if "raw" in r}
    rows = raw_fidelity_rows(model, test, test_raw, raw_of)
    shuffled = shuffle_check(model, concat_featuresets([test, test_raw]))
    out = {"MAE own r (test + test_raw)": shuffled["mae_own"], "MAE shuffled r (test + test_raw)":
           shuffled["mae_shuffled"]}
    for r in rows:
        m = MODALITY_OF[r["kind"]]
        out[f"rho raw {r['kind']} ({m}), all twins"] = r[f"rho_{m}"]
        out[f"rho raw {r['kind']} ({m}), clean row observes {m}"] = r[f"rho_{m}_observed"]
    return out


def main(args: argparse.Namespace) -> int:
    test, _ = read_shards(args.corpus, split=args.split)
    model, meta = load_checkpoint(args.checkpoint)
    results: dict[str, dict[str, float]] = {}
    for setting in SETTINGS:
        set_absent_variance(model, setting)
        log.info("absent_variance=%s on %d %s samples", setting, len(test), args.split)
        results[setting] = measure(model, test, args.seed) | raw_rho(model, args.corpus, test)
    keys, host = list(results[SETTINGS[0]]), machine()
    lines = [
        (f"checkpoint `{args.checkpoint.name}` ({meta['model']}), {len(test)} `{args.split}` samples of "
         f"`{args.corpus.name}`, seed {args.seed}; {host['processor']}, {host['cpus']} CPUs, torch {host['torch']}"),
        "",
        "| measure | " + " | ".join(f"absent_variance={s}" for s in SETTINGS) + " | max − learned |",
        "|---|" + "---|" * (len(SETTINGS) + 1),
    ]
    for k in keys:
        a, b = results["max"][k], results["learned"][k]
        lines.append(f"| {k} | {a:.4f} | {b:.4f} | {a - b:+.4f} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    setup_logging()
    sys.exit(run_main(lambda: main(parse_args(sys.argv[1:]))))
