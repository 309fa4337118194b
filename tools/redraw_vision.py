#!/usr/bin/env python3
"""A built MOSI/MOSEI corpus with its face windows drawn again: some bank videos left out, another pairing.

  python tools/redraw_vision.py --corpus runs/corpus-v2 --out runs/corpus-v2-nogrid --exclude '*.mpg' --p-agree 0

Every shard of --corpus is copied to --out with only its vision values and mask replaced
(`qamoe.corpus.redraw`): each row's face window is drawn again, by the same seeded rule as
tools/build_corpus.py, from the corpus's face bank without the videos matching --exclude (fnmatch on the file
name; repeatable), with the training pairing probability --p-agree (0: no training row's face depends on its
label). Text, audio, labels, ids and row order are unchanged; provenance.jsonl carries the new draws and
corpus.json where the view came from. Takes minutes (no speech synthesis, ASR or video decoding).
Exit codes: 0 ok, 2 bad options, 3 data unreadable.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from qamoe.corpus.extract_io import run_tool
from qamoe.corpus.redraw import RedrawConfig, redraw_corpus


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)  # fmt: skip
    p.add_argument("--corpus", type=Path, required=True, help="a folder of tools/build_corpus.py")
    p.add_argument("--out", type=Path, required=True, help="a new folder for the re-drawn corpus")
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                   help="leave out the bank videos whose file name matches (repeatable), e.g. '*.mpg' (GRID)")
    p.add_argument("--p-agree", type=float, default=0.0,
                   help="training pairing probability of the new draw (default 0: label-free everywhere)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> int:
    config = RedrawConfig(exclude=tuple(args.exclude), p_agree=args.p_agree)
    command = "python tools/redraw_vision.py " + shlex.join(sys.argv[1:])
    counts = redraw_corpus(args.corpus, args.out, config, created_by=command)
    print(f"re-drawn {sum(counts.values())} rows ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}) "
          f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(parse_args, main, sys.argv[1:]))
