"""Choose the next default among candidates by the rule fixed before any test split is read
(qamoe.corpus.selection): most valid voice targets met at clip end and in progress, then the lower validation
score of tools/train.py.

  for s in 0 1 2; do bash tools/evaluate_release.sh runs/live-v4/qamoe-s$s runs/live-v4/rel-s$s valid; done
  python tools/select_default.py runs/live-v4/rel-s0 runs/live-v4/rel-s1 runs/live-v4/rel-s2

Each argument is an OUT of `tools/evaluate_release.sh CK OUT valid` (it reads OUT/checkpoint and
OUT/valid/voice-live.json, nothing else). Prints one line per candidate, best first, then `chosen: OUT (CK)`.
Exit codes: 0 chosen, 2 a candidate is incomplete or its report is not of the valid split.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from qamoe.corpus.extract_io import run_tool
from qamoe.corpus.selection import Candidate, SelectionError, rank, targets_met


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("candidates", nargs="+", type=Path, help="OUT directories of evaluate_release.sh ... valid")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SelectionError(f"{path}: cannot read {what} ({exc}); run tools/evaluate_release.sh CK OUT valid") from exc


def candidate(out: Path) -> tuple[Candidate, Path]:
    try:
        ck = Path((out / "checkpoint").read_text(encoding="utf-8").strip())
    except OSError as exc:
        raise SelectionError(f"{out}: no checkpoint file; run tools/evaluate_release.sh CK {out} valid") from exc
    met, total = targets_met(read_json(out / "valid" / "voice-live.json", "the valid voice report"))
    score = read_json(ck / "config.json", "the checkpoint's config").get("metrics", {}).get("valid_score")
    if score is None:
        raise SelectionError(f"{ck}/config.json has no metrics.valid_score: not a checkpoint of tools/train.py")
    return Candidate(str(out), met, total, float(score)), ck


def main(args: argparse.Namespace) -> int:
    found = dict(candidate(out) for out in args.candidates)
    checkpoints = {c.name: ck for c, ck in found.items()}
    ranked = rank(list(found))
    for c in ranked:
        print(f"{c.name}: {c.met}/{c.total} valid voice targets met, validation score {c.valid_score:.4f}")
    best = ranked[0]
    print(f"chosen: {best.name} ({checkpoints[best.name]}), {best.met}/{best.total} targets")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(parse_args, main, sys.argv[1:]))
