#!/usr/bin/env python3
"""FER2013's training photos through the live camera path (placed in a webcam frame, held still for one
window, no microphone) into training shards, split by a hash of the file name (docs/CORPUS.md, "Real faces").

  python tools/build_fer_corpus.py --affect ../shared/data/affect --out runs/fer
  python tools/build_fer_corpus.py --affect ../shared/data/affect --out runs/fer --limit 500   # a first look
  python tools/build_fer_corpus.py --affect ../shared/data/affect --out runs/fer --balanced-out runs/fer-bal

Labels: the expression -> valence map of `qamoe.corpus.fer` (surprise left out). Output: shards
`<split>-NNNNN.npz` for `tools/train.py --data shards:OUT`, `provenance.jsonl` (per photo: expression, label,
split, whether BlazeFace found the face), `skipped.json`, `extract.json`. Resumable: made photos are not made
again. `--balanced-out DIR` then writes a second folder for training: the train split label-balanced to a
mean target of 0 (every happy and neutral photo, a hashed share of the negative ones; `qamoe.corpus.balance`)
and the valid and test splits whole; train on it instead of `--out` (`shards:...,DIR`). FER2013 is research data of unclear licence (../shared/data/affect/README.md): `--out` must lie outside
the tracked files (`runs/` is gitignored). Exit codes: 0 ok, 2 bad options or engines not built, 3 data
missing or unreadable, 130 interrupted, 143 terminated.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from edge.features.spec import default_feature_spec
from qamoe import __version__
from qamoe.corpus.balance import write_balanced
from qamoe.corpus.extract_io import add_shard_args, make_extractors, run_tool
from qamoe.corpus.fer import WebcamPlacement, read_fer
from qamoe.corpus.fer_build import build
from qamoe.errors import ConfigError
from qamoe.provenance import git_commit

SPLITS = ("train", "valid", "test")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)  # fmt: skip
    p.add_argument("--affect", type=Path, required=True, help="the folder of ../shared/data/affect")
    p.add_argument("--out", type=Path, required=True, help="shard folder (created; resumed when it exists)")
    p.add_argument("--splits", default=",".join(SPLITS), help="comma-separated subset of train,valid,test")
    p.add_argument("--workers", type=int, default=2, help="worker processes (one ORT thread per model each)")
    p.add_argument("--limit", type=int, help="make at most N photos in this run (the rest on a re-run)")
    p.add_argument("--balanced-out", type=Path, help="also write the label-balanced training view here")
    add_shard_args(p, "photos")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> int:
    if args.workers < 1 or args.shard_size < 1 or args.checkpoint_every < 1 or (args.limit or 0) < 0:
        raise ConfigError("--workers, --shard-size and --checkpoint-every must be >= 1 and --limit >= 0")
    splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    if not splits or set(splits) - set(SPLITS):
        raise ConfigError(f"--splits {args.splits!r}: choose from {','.join(SPLITS)}")
    data = read_fer(args.affect)
    faces = [f for f in data.faces if f.split in splits]
    spec = default_feature_spec(voice_encoder=args.voice_encoder)
    make_extractors(False, spec)  # fail here, with the fix, if the engines are not built (not in each worker)
    placement = WebcamPlacement()
    options = {"dataset": "fer2013", "splits": sorted(splits), "feature_spec_digest": spec.digest,
               "placement": repr(placement), "shard_size": args.shard_size}  # fmt: skip
    created_by = f"tools/build_fer_corpus.py qamoe-live {__version__} git {git_commit()}"
    t0 = time.perf_counter()
    counts = build(data, faces, args.out, workers=args.workers, limit=args.limit, options=options,
                   shard_size=args.shard_size, checkpoint_every=args.checkpoint_every, created_by=created_by,
                   placement=placement, spec=spec)  # fmt: skip
    if args.balanced_out is not None:
        balanced = write_balanced(args.out, args.balanced_out, created_by=f"{created_by} --balanced-out",
                                  shard_size=args.shard_size)  # fmt: skip
        print(f"balanced view in {args.balanced_out}: " + ", ".join(f"{k} {v}" for k, v in balanced.items()))
    print(f"made {counts['made']} photo(s) in {time.perf_counter() - t0:.1f} s ({counts['faces']} with a face "
          f"found); {counts['done_before']} made or skipped before; {counts['skipped']} skipped in all "
          f"(skipped.json); shards in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(parse_args, main, sys.argv[1:]))
