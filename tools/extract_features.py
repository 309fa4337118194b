#!/usr/bin/env python3
"""Extract live features from recorded clips (MMSA raw layout) into qamoe feature shards for training.

  python tools/extract_features.py --raw MOSEI/ --labels MOSEI/label.csv --out features/mosei
  python tools/extract_features.py --raw MOSI/Raw --labels MOSI/label.csv --out features/mosi-asr \
      --transcripts asr

Input: `Raw/<video_id>/<clip_id>.mp4` under --raw (or --raw itself holding the video folders) and a label.csv
with columns video_id, clip_id, text, label, mode (mode: train / valid / test; "dev" and "val" mean valid).
Each clip goes through `qamoe.corpus.offline.extract_clip`: the live extractors, one window ending with the
clip's speech (docs/FEATURES.md). Text is the gold transcript (`--transcripts gold`) or the live ASR's
(`--transcripts asr`).

Output in --out: `<split>-00000.npz`, ... (qamoe.data.shards format, at most --shard-size clips each, ids
`<video_id>$_$<clip_id>` as in MMSA, the feature spec in their metadata); `skipped.json` (clips that could
not be read, with the reason); `extract.json` (the options; a re-run must use the same ones).
Read them with `python tools/train.py --data shards:OUT`.

Resumable: the shards are the record of what is done. A re-run skips clips already in a shard and clips
already listed in skipped.json (unless --retry-skipped), and appends to each split's last, partly filled
shard. The open shard is rewritten every --checkpoint-every clips and on Ctrl-C, so a crash loses at most
that many clips. Exit codes: 0 ok (even with skipped clips), 2 bad options or engines not built, 3 bad
label file or output folder, 130 interrupted, 143 terminated.
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from edge.features.spec import default_feature_spec
from qamoe import __version__
from qamoe.corpus.extract_io import (
    CLIP_ERRORS,
    SKIPPED_FILE,
    SPLIT_ALIASES,
    SPLITS,
    ShardSet,
    add_shard_args,
    check_run_options,
    load_skipped,
    make_extractors,
    progress,
    run_tool,
    sample_featureset,
    save_skipped,
)
from qamoe.corpus.offline import ASR, ClipFeatures, ClipReadError, Extractors, OfflineConfig, extract_clip
from qamoe.data.featureset import FeatureSet
from qamoe.errors import ConfigError, DataError
from qamoe.modality import MODALITIES
from qamoe.provenance import git_commit

logger = logging.getLogger("tools.extract_features")

LABEL_COLUMNS = ("video_id", "clip_id", "text", "label", "mode")
VIDEO_EXTS = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".mpg", ".mpeg")


@dataclass(frozen=True)
class ClipRow:
    key: str  # <video_id>$_$<clip_id>, MMSA's sample id
    video_id: str
    clip_id: str
    text: str
    label: float
    split: str


def read_labels(path: Path, splits: tuple[str, ...]) -> list[ClipRow]:
    """The rows of an MMSA label.csv whose split is in `splits`, in file order."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in LABEL_COLUMNS if c not in (reader.fieldnames or ())]
            if missing:
                raise DataError(f"{path} lacks column(s) {', '.join(missing)}: an MMSA label.csv has "
                                f"{', '.join(LABEL_COLUMNS)}")
            rows = [_parse_row(r, i + 2, path) for i, r in enumerate(reader)]
    except UnicodeDecodeError:
        raise DataError(f"--labels {path} is not UTF-8 text ({_first_bad_byte(path)}): save it as UTF-8, e.g. "
                        f"`iconv -f latin1 -t utf-8 {path} > labels-utf8.csv`") from None
    except (OSError, csv.Error) as e:
        raise DataError(f"cannot read --labels {path}: {e}") from None
    seen: set[str] = set()
    for r in rows:
        if r.key in seen:
            raise DataError(f"{path}: clip {r.key} is listed twice: remove the duplicate row")
        seen.add(r.key)
    return [r for r in rows if r.split in splits]


def _first_bad_byte(path: Path) -> str:
    """Where a file stops being UTF-8 (the decoder's own offset is relative to the chunk it was reading)."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        return f"byte {data[e.start]:#04x} on line {line}"
    return "undecodable bytes"


def _parse_row(r: dict[str, str], line: int, path: Path) -> ClipRow:
    mode = (r["mode"] or "").strip().lower()
    split = SPLIT_ALIASES.get(mode, mode)
    if split not in SPLITS:
        raise DataError(f"{path}:{line}: mode {r['mode']!r} is not one of train, valid (dev), test")
    try:
        label = float(r["label"])
    except (TypeError, ValueError):
        label = math.nan
    if not math.isfinite(label):
        raise DataError(f"{path}:{line}: label {r['label']!r} is not a finite number")
    video_id, clip_id = (r["video_id"] or "").strip(), (r["clip_id"] or "").strip()
    if not video_id or not clip_id:
        raise DataError(f"{path}:{line}: empty video_id or clip_id")
    return ClipRow(f"{video_id}$_${clip_id}", video_id, clip_id, r["text"] or "", label, split)


def find_clip(raw: Path, row: ClipRow) -> Path | None:
    """`<raw>/<video_id>/<clip_id>.mp4`, or the same stem with another video extension; None if absent."""
    folder = raw / row.video_id
    for ext in VIDEO_EXTS:
        path = folder / f"{row.clip_id}{ext}"
        if path.is_file():
            return path
    return None


def clip_featureset(clip: ClipFeatures, row: ClipRow) -> FeatureSet:
    """One clip as a one-sample FeatureSet (streams keyed by Modality)."""
    streams = {m: clip.streams[str(m)] for m in MODALITIES}
    for m, s in streams.items():
        if not np.isfinite(s.values).all():
            raise ClipReadError(f"{m} features of {row.key} are not finite: check the file's {m} stream")
    return sample_featureset({m: (s.values, s.mask) for m, s in streams.items()}, row.label, row.key)


@dataclass
class Tally:
    extracted: Counter[str]
    skipped: int = 0
    previously_skipped: int = 0
    done_before: int = 0
    seconds: float = 0.0


def extract_all(args: argparse.Namespace, rows: list[ClipRow], shards: ShardSet, skipped: dict[str, Any],
                extractors: Extractors) -> Tally:
    tally = Tally(Counter())
    todo = []
    for row in rows:
        if row.key in shards.done:
            tally.done_before += 1
        elif row.key in skipped and not args.retry_skipped:
            tally.previously_skipped += 1
        else:
            todo.append(row)
    todo = todo[: args.limit] if args.limit is not None else todo
    transcript_of = (lambda row: ASR) if args.transcripts == "asr" else (lambda row: row.text)
    raw = args.raw / "Raw" if (args.raw / "Raw").is_dir() else args.raw
    start = time.perf_counter()
    try:
        with progress(todo, desc="extract", unit="clip") as clips:
            for row in clips:
                path = find_clip(raw, row)
                try:
                    if path is None:
                        raise ClipReadError(f"no video file {row.video_id}/{row.clip_id}.* under {raw}")
                    clip = extract_clip(path, path, transcript_of(row), spec=args.spec, extractors=extractors,
                                        config=args.offline)
                    shards.add(row.split, clip_featureset(clip, row))
                    tally.extracted[row.split] += 1
                    skipped.pop(row.key, None)
                except CLIP_ERRORS as e:
                    logger.warning("skipped %s: %s", row.key, e)
                    where = str(path) if path is not None else ""
                    skipped[row.key] = {"id": row.key, "split": row.split, "path": where, "reason": str(e)}
                    tally.skipped += 1
                    save_skipped(args.out, skipped)
    finally:
        shards.flush()
        save_skipped(args.out, skipped)
        tally.seconds = time.perf_counter() - start
    return tally


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--raw", type=Path, required=True, help="folder holding Raw/<video_id>/<clip_id>.mp4")
    p.add_argument("--labels", type=Path, required=True, help="MMSA label.csv")
    p.add_argument("--out", type=Path, required=True, help="shard folder (created; resumed when it exists)")
    p.add_argument("--transcripts", choices=("gold", "asr"), default="gold")
    add_shard_args(p, "clips")
    p.add_argument("--limit", type=int, help="extract at most N clips in this run (the rest on a re-run)")
    p.add_argument("--splits", default="train,valid,test", help="comma-separated splits to extract")
    p.add_argument("--end-at", choices=("speech", "clip"), default="speech",
                   help="window ends at the last speech + pad (default) or at the clip's end")
    p.add_argument("--retry-skipped", action="store_true", help="retry clips listed in skipped.json")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def build_options(args: argparse.Namespace) -> None:
    """Validate the flags into configs on `args` (ConfigError with the fix on a bad value)."""
    if args.shard_size < 1 or args.checkpoint_every < 1 or (args.limit is not None and args.limit < 0):
        raise ConfigError("--shard-size and --checkpoint-every must be >= 1 and --limit >= 0")
    splits = tuple(SPLIT_ALIASES.get(s, s) for s in (x.strip().lower() for x in args.splits.split(",")) if s)
    bad = [s for s in splits if s not in SPLITS]
    if bad or not splits:
        raise ConfigError(f"--splits {args.splits!r}: use a comma-separated subset of {','.join(SPLITS)}")
    args.splits = splits
    if not args.raw.is_dir():
        raise DataError(f"--raw {args.raw} is not a folder: pass the folder that holds Raw/<video_id>/")
    args.offline = OfflineConfig(end_at=args.end_at)
    args.spec = default_feature_spec(voice_encoder=args.voice_encoder)


def main(args: argparse.Namespace) -> int:
    if not args.verbose:  # faster-whisper logs two INFO lines per clip
        logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    build_options(args)
    rows = read_labels(args.labels, args.splits)
    args.out.mkdir(parents=True, exist_ok=True)
    options = {"transcripts": args.transcripts, "shard_size": args.shard_size, "end_at": args.end_at,
               "speech_pad_s": args.offline.speech_pad_s, "feature_spec_digest": args.spec.digest}
    check_run_options(args.out, options)
    created_by = (f"tools/extract_features.py qamoe-live {__version__} git {git_commit()} "
                  f"(transcripts={args.transcripts}, end_at={args.end_at})")
    shards = ShardSet(args.out, args.spec, shard_size=args.shard_size, checkpoint_every=args.checkpoint_every,
                      created_by=created_by)
    skipped = load_skipped(args.out)
    extractors = make_extractors(args.transcripts == "asr", args.spec)
    t = extract_all(args, rows, shards, skipped, extractors)
    n = sum(t.extracted.values())
    per_split = ", ".join(f"{s} {t.extracted[s]}" for s in SPLITS if t.extracted[s])
    rate = f", {n / t.seconds:.2f} clips/s" if n and t.seconds > 0 else ""
    print(f"extracted {n} clip(s){f' ({per_split})' if per_split else ''} in {t.seconds:.1f} s{rate}; "
          f"skipped {t.skipped} (+{t.previously_skipped} skipped before, see {args.out / SKIPPED_FILE}); "
          f"{t.done_before} already done; shards in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(parse_args, main, sys.argv[1:]))
