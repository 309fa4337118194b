#!/usr/bin/env python3
"""Evaluate one or more checkpoints over named spectrum protocols ("One-Checkpoint-for-All").

  python tools/evaluate.py --checkpoints runs/qamoe-s0 runs/qamoe-s1 runs/qamoe-s2 runs/early-s0 \
      --data synthetic --protocols clean missing_patterns noise random_missing joint --out docs/results/eval

Checkpoints of the same method (the `method` recorded at training, else the model name) are grouped as seeds:
the summary is mean +- std over them. Writes rows.csv, summary.md and spectrum.png into --out, each with the
git commit and the command that produced it."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from qamoe.checkpoint import load_checkpoint
from qamoe.cli import run_main, setup_logging
from qamoe.data.sources import load_source
from qamoe.evaluation import evaluate_protocols
from qamoe.provenance import git_commit, machine
from qamoe.reporting import plot, summary_table, write_csv
from qamoe.spectrum import available_protocols

DEFAULT_PROTOCOLS = ["clean", "missing_patterns", "noise", "random_missing", "joint"]


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoints", nargs="+", type=Path, required=True)
    p.add_argument("--data", default="synthetic", help="synthetic[:SEED] | mmsa:PATH[:DATASET] | shards:DIR")
    p.add_argument("--split", default="test", choices=["train", "valid", "test"])
    p.add_argument("--protocols", nargs="+", default=DEFAULT_PROTOCOLS, choices=available_protocols())
    p.add_argument("--seed", type=int, default=0, help="seed of the corruptions (same for every checkpoint)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> int:
    data, info = load_source(args.data)
    test = data[args.split]
    rows, methods, configs = [], [], {}
    for i, ck in enumerate(args.checkpoints):
        model, meta = load_checkpoint(ck)
        method = meta.get("train_config", {}).get("method") or meta["model"]
        seed = meta.get("train_config", {}).get("seed", i)
        if method not in methods:
            methods.append(method)
        configs[str(ck)] = {"model": meta["model"], "model_config": meta["model_config"], "git_commit": meta["git_commit"]}
        for row in evaluate_protocols(model, test, args.protocols, seed=args.seed):
            rows.append(row | {"method": method, "seed": seed, "checkpoint": str(ck)})
    args.out.mkdir(parents=True, exist_ok=True)
    provenance = {
        "git_commit": git_commit(),
        "command": "python tools/evaluate.py " + shlex.join(sys.argv[1:]),
        "data": info,
        "split": args.split,
        "checkpoints": configs,
        "machine": machine(),
    }
    write_csv(rows, args.out / "rows.csv", provenance)
    plot(rows, methods, args.out / "spectrum.png", f"{provenance['command']} @ {provenance['git_commit'][:12]}")
    table = summary_table(rows, methods)
    (args.out / "summary.md").write_text(
        f"<!-- provenance: {json.dumps(provenance, sort_keys=True)} -->\n\n{table}\n", encoding="utf-8"
    )
    print(table)
    return 0


if __name__ == "__main__":
    ns = parse_args(sys.argv[1:])
    setup_logging(ns.verbose)
    sys.exit(run_main(lambda: main(ns), verbose=ns.verbose))
