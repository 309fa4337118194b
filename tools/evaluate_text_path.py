#!/usr/bin/env python3
"""Does a checkpoint still read the words? MOSI and MOSEI test rows of the label-free corpus, per dataset.

  python tools/evaluate_text_path.py --corpus runs/corpus --checkpoint runs/live/qamoe-s0 runs/face/qamoe-fer

For each checkpoint, on the corpus's `test` split (gold transcripts) and `test_asr` (the live ASR's text of the
synthesised speech), per dataset (ids `mosi/...`, `mosei/...`): Non0 Acc-2, MAE and Pearson r of the valence
against the label (`qamoe.metrics.regression_metrics`). Issue 15 asks that the text path of a model trained
with the affect corpora stay within 1 point of one trained on the same rows without them. The test splits are
read here only; training selects on valid. Exit codes: 0 ok, 2 bad options, 3 data unreadable.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from qamoe.checkpoint import load_checkpoint
from qamoe.corpus.extract_io import run_tool
from qamoe.data.gather import read_shards
from qamoe.errors import ConfigError
from qamoe.evaluation import predict
from qamoe.metrics import regression_metrics

SPLITS = {"test": "gold text", "test_asr": "ASR text", "valid": "valid (selection only)"}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)  # fmt: skip
    p.add_argument("--corpus", type=Path, required=True, help="the folder of tools/build_corpus.py")
    p.add_argument("--checkpoint", type=Path, nargs="+", required=True)
    p.add_argument("--splits", default="test,test_asr",
                   help="comma-separated: test, test_asr (report); valid (to compare candidates while choosing)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> int:
    splits = [s for s in args.splits.split(",") if s]
    if not splits or any(s not in SPLITS for s in splits):
        raise ConfigError(f"--splits {args.splits!r}: use a comma-separated subset of {','.join(SPLITS)}")
    data = {split: read_shards(args.corpus, split=split)[0] for split in splits}
    header = " | ".join(f"{d} {SPLITS[s]}" for s in splits for d in ("MOSEI", "MOSI"))
    print(f"Non0 Acc-2 / MAE / r\n\n| checkpoint | {header} |\n|---|" + "---|" * 2 * len(splits))
    for ck in args.checkpoint:
        model, _ = load_checkpoint(ck)
        cells = []
        for fs in data.values():
            valence = predict(model, fs).valence
            prefix = np.char.partition(fs.ids.astype(str), "/")[:, 0]
            for dataset in ("mosei", "mosi"):
                m = prefix == dataset
                if not m.any():  # e.g. test_asr built for MOSI alone (docs/CORPUS.md, "Commands")
                    cells.append("no rows")
                    continue
                r = regression_metrics(valence[m], fs.labels[m])
                cells.append(f"{100 * r['non0_acc2']:.1f} / {r['mae']:.3f} / {r['corr']:.3f}")
        print(f"| {ck} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(parse_args, main, sys.argv[1:]))
