#!/usr/bin/env python3
"""How well checkpoints hear affect in real voices: the issue-15 voice targets on held-out speakers.

  python tools/evaluate_affect.py --data shards:runs/affect --checkpoint runs/affect-live/qamoe-s0 [...more]
  python tools/evaluate_affect.py --data shards:runs/affect --checkpoint qamoe/checkpoints/live_v2 --split valid

For each checkpoint and split: per corpus (RAVDESS, EmoDB) the AUC of valence for happy/calm vs angry, sad,
fearful, disgust (targets >= 0.85 / 0.75), happy mean - negative mean (>= 1.0), |neutral mean| (<= 0.3), and
for the 47 speech_va clips the Spearman correlation with their annotated valence (`qamoe.corpus.affect_eval`).
These are offline numbers on the corpus's windows (the live path's extractors, run on the recorded clip);
`--json OUT` also writes every row. Exit codes: 0 ok, 2 bad options, 3 data or checkpoint unreadable.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from qamoe.checkpoint import load_checkpoint
from qamoe.corpus.affect_eval import affect_rows, format_rows
from qamoe.corpus.extract_io import run_tool
from qamoe.data.sources import load_source
from qamoe.errors import ConfigError
from qamoe.evaluation import predict


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)  # fmt: skip
    p.add_argument("--data", required=True, help="shards:DIR of tools/build_affect_corpus.py")
    p.add_argument("--checkpoint", type=Path, nargs="+", required=True)
    p.add_argument("--split", default="test", choices=("valid", "test"))
    p.add_argument("--json", type=Path, help="write every row here")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> int:
    data, _ = load_source(args.data, splits=(args.split,))  # the affect views are built without a test split
    if args.split not in data:
        raise ConfigError(f"{args.data} has no {args.split} split")
    fs = data[args.split]
    out = []
    for ck in args.checkpoint:
        model, _ = load_checkpoint(ck)
        rows = affect_rows(fs.ids, predict(model, fs).valence, fs.labels)
        print(format_rows(rows, f"\n{ck} ({args.split}, {len(fs)} clips)"))
        out += [{"checkpoint": str(ck), "split": args.split, **r} for r in rows]
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=1, default=float) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(parse_args, main, sys.argv[1:]))
