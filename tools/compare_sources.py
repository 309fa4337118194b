#!/usr/bin/env python3
"""QA-MoE against the baselines per source, clean and with a stream degraded (issue 15, part 4).

  python tools/compare_sources.py --corpus runs/corpus-v2 --affect runs/affect-v2-lead \
      --checkpoints runs/live-full/*-s[0-9] --out docs/results/sources

The test rows of the MOSI/MOSEI corpus (--corpus, tools/build_corpus.py: the signal is in the words) and of the
real-affect corpus (--affect, tools/build_affect_corpus.py: held-out RAVDESS actors and EmoDB speakers and the
47 speech_va clips; the signal is in the voice) are split by source and read by every checkpoint clean and with
the voice's or the words' features noised (lambda 0.5, 0.9) or gone (`qamoe.corpus.source_compare`: the same
seeded corruptions for every checkpoint). Checkpoints of one method (the `method` recorded at training) are
seeds: the tables are mean ± sd over them. Writes rows.csv and summary.md (with the git commit and this
command) into --out and prints the summary. --split valid reads the selection split instead (for choosing).
Exit codes: 0 ok, 2 bad options, 3 data unreadable, 4 a checkpoint unreadable.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from qamoe.checkpoint import load_checkpoint
from qamoe.corpus.extract_io import run_tool
from qamoe.corpus.source_compare import (
    clean_table,
    compare,
    degraded_table,
    reliability_table,
    split_by_source,
)
from qamoe.data.gather import concat_featuresets, read_shards
from qamoe.errors import ConfigError
from qamoe.provenance import git_commit, machine
from qamoe.reporting import write_csv


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)  # fmt: skip
    p.add_argument("--corpus", type=Path, help="MOSI/MOSEI shards (tools/build_corpus.py)")
    p.add_argument("--affect", type=Path, help="real-affect shards (tools/build_affect_corpus.py)")
    p.add_argument("--checkpoints", type=Path, nargs="+", required=True)
    p.add_argument("--split", choices=("test", "valid"), default="test")
    p.add_argument("--seed", type=int, default=0, help="seed of the corruptions (the same for every checkpoint)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> int:
    folders = [f for f in (args.corpus, args.affect) if f is not None]
    if not folders:
        raise ConfigError("give --corpus, --affect or both: the shards whose test rows are compared")
    rows_of = concat_featuresets([read_shards(f, split=args.split)[0] for f in folders])
    sources = split_by_source(rows_of)
    if not sources:
        raise ConfigError(f"no rows of a known source in the {args.split} split of {', '.join(map(str, folders))}")
    rows, methods, configs = [], [], {}
    for i, ck in enumerate(args.checkpoints):
        model, meta = load_checkpoint(ck)
        method = meta.get("train_config", {}).get("method") or meta["model"]
        method = method.split("[", 1)[0]  # the width is the same for every method of a run
        seed = meta.get("train_config", {}).get("seed", i)
        if method not in methods:
            methods.append(method)
        configs[str(ck)] = {"model": meta["model"], "model_config": meta["model_config"],
                            "git_commit": meta["git_commit"]}  # fmt: skip
        for row in compare(model, sources, seed=args.seed):
            rows.append(row | {"method": method, "seed": seed, "checkpoint": str(ck)})
    provenance = {"git_commit": git_commit(), "command": "python tools/compare_sources.py " + shlex.join(sys.argv[1:]),
                  "split": args.split, "rows": {s: len(fs) for s, fs in sources.items()}, "checkpoints": configs,
                  "machine": machine()}  # fmt: skip
    summary = "\n\n".join([
        f"Clean, {args.split} (mean ± sd over seeds)", clean_table(rows, methods),
        "Each source's headline metric with one stream degraded", degraded_table(rows, methods),
        "Reliability of the degraded stream (mean ± sd over seeds and the sources of each kind)",
        reliability_table(rows, methods),
    ])  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, args.out / "rows.csv", provenance)
    (args.out / "summary.md").write_text(f"<!-- provenance: {json.dumps(provenance, sort_keys=True)} -->\n\n"
                                         f"{summary}\n", encoding="utf-8")  # fmt: skip
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(parse_args, main, sys.argv[1:]))
