#!/usr/bin/env python3
"""Real emotional speech (RAVDESS, EmoDB, speech_va) through the live audio extractor and the live ASR into
training shards, one window per clip, split by speaker (docs/CORPUS.md, "Real emotional speech").

  python tools/build_affect_corpus.py --affect ../shared/data/affect --out runs/affect
  python tools/build_affect_corpus.py --affect ../shared/data/affect --out runs/affect --datasets ravdess \
      --limit 50                          # a first look; a re-run continues where it stopped
  python tools/build_affect_corpus.py --affect ../shared/data/affect --out runs/affect --balanced-out runs/affect-bal

Labels: the emotion -> valence map and the speaker splits of `qamoe.corpus.affect`. Output: shards
`<split>-NNNNN.npz` for `tools/train.py --data shards:OUT`, `provenance.jsonl` (per clip: speaker, emotion,
label, split, what the ASR heard), `skipped.json`, `extract.json`. Resumable: made clips are not made again.
`--lead-in S` puts S seconds of silence before each clip (what a microphone open before the speech hears; the
default 0 is a clip that starts the stream), `--noise-floor=LO:HI` a microphone's white noise under the lead-in
and the clip at a level per clip drawn from a hash of its id, `--speech-level=LO:HI` the clip scaled to a speech
level drawn the same way (microphones at other gains; `qamoe.corpus.affect_build.MicContext`), `--codec
mp2,mp3,aac` each clip through one of these lossy codecs at a sample rate and bit rate drawn the same way (a
file's or a video's sound track; `qamoe.corpus.codec`); `--cut=LO:HI`
ends each clip's window inside its speech, at a fraction of it drawn the same way, with no words (a sentence
still being spoken, as the live path shows it before the ASR has the words; docs/CORPUS.md "In progress");
`--splits train,valid` makes only those splits' clips.
`--balanced-out DIR` then writes a second folder for training: the train split label-balanced to a mean target
of 0 (every clip of target >= 0, a hashed share of the negative ones; `qamoe.corpus.balance`) and the valid and
test splits whole, every label from the current emotion -> valence map (so a corpus built under an earlier map
needs no rebuild); train on it instead of `--out`. `--valence calm=0.5` (repeatable) writes that view under
another emotion -> valence map, every split relabelled from the clips' names before the balance (to measure a
map against the default without rebuilding: docs/results/affect/summary.md, "Calm").
The data is research data with its own licences (../shared/data/affect/README.md): `--out` must lie outside
the tracked files (`runs/` is gitignored). Exit codes: 0 ok, 2 bad options or engines not built, 3 data
missing or unreadable, 130 interrupted, 143 terminated.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from edge.features.spec import default_feature_spec
from qamoe import __version__
from qamoe.corpus.affect import DATASETS, VALENCE, parse_valence_overrides, read_clips, relabel
from qamoe.corpus.affect_build import MicContext, build
from qamoe.corpus.balance import write_balanced
from qamoe.corpus.codec import parse_codecs
from qamoe.corpus.extract_io import add_shard_args, make_extractors, run_tool
from qamoe.errors import ConfigError
from qamoe.provenance import git_commit


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)  # fmt: skip
    p.add_argument("--affect", type=Path, required=True, help="the folder of ../shared/data/affect")
    p.add_argument("--out", type=Path, required=True, help="shard folder (created; resumed when it exists)")
    p.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated subset of {','.join(DATASETS)}")
    p.add_argument("--workers", type=int, default=2, help="worker processes (each: Whisper on one thread)")
    p.add_argument("--limit", type=int, help="make at most N clips in this run (the rest on a re-run)")
    p.add_argument("--balanced-out", type=Path, help="also write the label-balanced training view here")
    p.add_argument("--valence", action="append", default=[], metavar="EMOTION=V",
                   help="the balanced view under another emotion -> valence map (repeatable, e.g. calm=0.5; "
                        "the corpus itself keeps the map of qamoe.corpus.affect.VALENCE); needs --balanced-out")
    p.add_argument("--lead-in", type=float, default=0.0, metavar="S",
                   help="seconds of silence before each clip, as an open microphone hears before speech "
                        "(0: the clip starts the stream; 4.5: the gap of tools/evaluate_affect_live.py)")
    p.add_argument("--noise-floor", metavar="LO:HI",
                   help="white noise over the lead-in and the clip, per clip at a level drawn uniformly in LO..HI "
                        "dBFS RMS from a hash of its id (write it with '=': --noise-floor=-80:-50; or one level: -60)")
    p.add_argument("--speech-level", metavar="LO:HI",
                   help="scale each clip so its speech level (90th percentile of 20 ms RMS) is drawn uniformly in "
                        "LO..HI dBFS from a hash of its id, as microphones at other gains deliver it "
                        "(--speech-level=-50:-10; default: the clip as recorded)")
    p.add_argument("--codec", metavar="NAMES",
                   help="send each clip through one of these lossy codecs (comma-separated: mp2, mp3, aac), with "
                        "codec, sample rate and bit rate drawn from a hash of its id (default: as recorded)")
    p.add_argument("--cut", metavar="LO:HI",
                   help="end each window inside the speech, at a fraction of it drawn uniformly in LO..HI from a "
                        "hash of the clip's id, without words (--cut=0.3:0.9; default: after the speech)")
    p.add_argument("--splits", help="comma-separated splits to make (default: train,valid,test)")
    add_shard_args(p, "clips")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def parse_dbfs_range(text: str | None, flag: str, example: str) -> tuple[float, float] | None:
    """"LO:HI" or "LEVEL" (dBFS) -> (lo, hi); MicContext checks the range."""
    if text is None:
        return None
    try:
        parts = [float(x) for x in text.split(":")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2):
        raise ConfigError(f"{flag} {text}: use LO:HI in dBFS, e.g. {example}, or one level, e.g. {example.split(':')[1]}")
    return (parts[0], parts[-1])


def parse_cut(text: str | None) -> tuple[float, float] | None:
    """"LO:HI" -> (lo, hi) with 0 < lo <= hi < 1 (fractions of the speech)."""
    if text is None:
        return None
    try:
        lo, hi = (float(x) for x in text.split(":"))
    except ValueError:
        lo = hi = float("nan")
    if not 0 < lo <= hi < 1:
        raise ConfigError(f"--cut {text}: use LO:HI, fractions of the speech with 0 < LO <= HI < 1, e.g. 0.3:0.9")
    return (lo, hi)


def main(args: argparse.Namespace) -> int:
    if not args.verbose:  # faster-whisper logs two INFO lines per clip
        logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    if args.workers < 1 or args.shard_size < 1 or args.checkpoint_every < 1 or (args.limit or 0) < 0:
        raise ConfigError("--workers, --shard-size and --checkpoint-every must be >= 1 and --limit >= 0")
    mic = MicContext(args.lead_in, parse_dbfs_range(args.noise_floor, "--noise-floor", "-80:-50"),
                     parse_dbfs_range(args.speech_level, "--speech-level", "-50:-10"),
                     parse_codecs(args.codec) if args.codec is not None else ())
    cut = parse_cut(args.cut)
    overrides = parse_valence_overrides(args.valence)
    if overrides and args.balanced_out is None:
        raise ConfigError("--valence relabels the balanced view: pass --balanced-out DIR with it")
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    splits = {x.strip() for x in (args.splits or "train,valid,test").split(",") if x.strip()}
    if not splits or not splits <= {"train", "valid", "test"}:
        raise ConfigError(f"--splits {args.splits}: choose from train,valid,test")
    clips = [c for c in read_clips(args.affect, datasets) if c.split in splits]
    spec = default_feature_spec(voice_encoder=args.voice_encoder)
    make_extractors(True, spec)  # fail here, with the fix, if the engines are not built (not in each worker)
    options = {"datasets": sorted(datasets), "transcripts": "asr", "feature_spec_digest": spec.digest,
               "shard_size": args.shard_size}  # fmt: skip
    created_by = f"tools/build_affect_corpus.py qamoe-live {__version__} git {git_commit()}"
    t0 = time.perf_counter()
    counts = build(clips, args.out, workers=args.workers, limit=args.limit, options=options,
                   shard_size=args.shard_size, checkpoint_every=args.checkpoint_every, created_by=created_by,
                   spec=spec, mic=mic, cut=cut)  # fmt: skip
    if args.balanced_out is not None:
        map_note = "".join(f" --valence {k}={v:g}" for k, v in overrides.items())
        balanced = write_balanced(args.out, args.balanced_out, created_by=f"{created_by} --balanced-out{map_note}",
                                  shard_size=args.shard_size,
                                  relabel=lambda ids, labels: relabel(ids, labels, overrides))
        for emotion, v in overrides.items():
            print(f"balanced view: {emotion} -> {v:g} (the corpus: {VALENCE[emotion]:g})")
        print(f"balanced view in {args.balanced_out}: " + ", ".join(f"{k} {v}" for k, v in balanced.items()))
    print(f"made {counts['made']} clip(s) in {time.perf_counter() - t0:.1f} s; {counts['done_before']} made or "
          f"skipped before; {counts['skipped']} skipped in all (skipped.json); shards in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(parse_args, main, sys.argv[1:]))
