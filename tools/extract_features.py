#!/usr/bin/env python3
"""Extract live features from recorded clips (MMSA raw layout) into qamoe feature shards for training.

  python tools/extract_features.py --raw MOSEI/ --labels MOSEI/label.csv --out features/mosei
  python tools/extract_features.py --raw MOSI/Raw --labels MOSI/label.csv --out features/mosi-asr \
      --transcripts asr

Input: `Raw/<video_id>/<clip_id>.mp4` under --raw (or --raw itself holding the video folders) and a label.csv
with columns video_id, clip_id, text, label, mode (mode: train / valid / test; "dev" and "val" mean valid).
Each clip goes through `edge.features.offline.extract_clip`: the live extractors, one window ending with the
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
label file or output folder, 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import logging
import math
import os
import re
import secrets
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.asr import AsrError, AsrInputError
from edge.features.audio_quality import AudioInputError
from edge.features.offline import (
    ASR,
    ClipFeatures,
    ClipReadError,
    Extractors,
    OfflineConfig,
    OfflineError,
    extract_clip,
)
from edge.features.spec import FeatureSpec, FeatureSpecError, default_feature_spec
from edge.features.text import TextFeatureError, TextInputError
from edge.features.visual import VisualInputError
from edge.manifest import ManifestError
from qamoe import __version__
from qamoe.cli import run_main, setup_logging
from qamoe.data.featureset import FeatureSet
from qamoe.data.shards import concat_featuresets, read_shard, read_shard_meta, write_shard
from qamoe.errors import ConfigError, DataError
from qamoe.modality import MODALITIES
from qamoe.provenance import git_commit

logger = logging.getLogger("tools.extract_features")

SPLITS = ("train", "valid", "test")
SPLIT_ALIASES = {"dev": "valid", "val": "valid", "validation": "valid"}
LABEL_COLUMNS = ("video_id", "clip_id", "text", "label", "mode")
VIDEO_EXTS = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".mpg", ".mpeg")
SHARD_NAME = re.compile(r"^(?P<split>[A-Za-z0-9_]+)-(?P<index>\d{5})\.npz$")
RUN_FILE, SKIPPED_FILE = "extract.json", "skipped.json"
# What an unreadable or undecodable clip raises: skipped and reported, never a crash.
CLIP_ERRORS = (ClipReadError, AudioInputError, VisualInputError, TextInputError, AsrInputError)


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
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"cannot read --labels {path}: {e}") from None
    seen: set[str] = set()
    for r in rows:
        if r.key in seen:
            raise DataError(f"{path}: clip {r.key} is listed twice: remove the duplicate row")
        seen.add(r.key)
    return [r for r in rows if r.split in splits]


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
    return FeatureSet(
        feats={m: s.values[None] for m, s in streams.items()},
        masks={m: s.mask[None] for m, s in streams.items()},
        labels=np.array([row.label], np.float32),
        ids=np.array([row.key]),
    )


def write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        tmp.write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


class ShardSet:
    """The shards of one output folder: the clips they already hold, and one open (partly filled) shard per
    split that new clips go to."""

    def __init__(
        self, out: Path, spec: FeatureSpec, *, shard_size: int, checkpoint_every: int, created_by: str
    ) -> None:
        self.out, self.shard_size, self.checkpoint_every = out, shard_size, checkpoint_every
        self.spec_dict = json.loads(json.dumps(spec.to_dict()))  # as it reads back from a shard
        self.created_by = created_by
        self.done: set[str] = set()
        self._index: dict[str, int] = {}  # split -> index of its open shard
        self._open: dict[str, list[FeatureSet]] = {}  # split -> samples of the open shard
        self._unsaved: Counter[str] = Counter()
        self._scan()

    def _scan(self) -> None:
        last: dict[str, tuple[int, Path, int]] = {}
        for path in sorted(self.out.glob("*.npz")):
            m = SHARD_NAME.match(path.name)
            if not m:
                continue
            meta = read_shard_meta(path)
            if meta["feature_spec"] != self.spec_dict:
                raise DataError(f"{path} holds features of another feature spec: extract into a new --out "
                                "folder (or delete the old shards)")
            with np.load(path, allow_pickle=False) as z:  # the ids member only, not the features
                self.done.update(z["id"].astype(str).tolist())
            split, index = m["split"], int(m["index"])
            if split not in last or index > last[split][0]:
                last[split] = (index, path, int(meta["n"]))
        for split, (index, path, n) in last.items():
            if n < self.shard_size:
                self._index[split], self._open[split] = index, [read_shard(path)[0]]
                logger.info("resuming %s: %d clip(s) already there", path.name, n)
            else:
                self._index[split] = index + 1

    def add(self, split: str, fs: FeatureSet) -> None:
        self._open.setdefault(split, []).append(fs)
        self._index.setdefault(split, 0)
        self.done.update(fs.ids.tolist())
        self._unsaved[split] += 1
        if sum(len(s) for s in self._open[split]) >= self.shard_size:
            self._write(split)
            self._index[split] += 1
            self._open[split] = []
        elif self._unsaved[split] >= self.checkpoint_every:
            self._write(split)

    def flush(self) -> None:
        """Write every open shard that holds unsaved clips."""
        for split in list(self._open):
            if self._unsaved[split] and self._open[split]:
                self._write(split)

    def _write(self, split: str) -> None:
        path = self.out / f"{split}-{self._index[split]:05d}.npz"
        fs = concat_featuresets(self._open[split])
        self._open[split] = [fs]
        write_shard(path, fs, split=split, feature_spec=self.spec_dict, created_by=self.created_by)
        self._unsaved[split] = 0


def check_run_options(out: Path, options: dict[str, Any]) -> None:
    """A re-run into `out` must use the options its shards were made with (recorded in extract.json)."""
    path = out / RUN_FILE
    if path.is_file():
        try:
            before = json.loads(path.read_text(encoding="utf-8")).get("options", {})
        except (OSError, json.JSONDecodeError, AttributeError) as e:
            raise DataError(f"{path} is unreadable ({e}): delete it to start over in this folder") from None
        diff = sorted(k for k in options if before.get(k) != options[k])
        if diff:
            was = ", ".join(f"--{k.replace('_', '-')} {before.get(k)}" for k in diff)
            raise ConfigError(f"{out} was extracted with {was}: resume with those options, or use a new "
                              "--out")
    write_json_atomic(path, {"format": "qamoe-extract-run", "version": 1, "options": options})


def load_skipped(out: Path) -> dict[str, dict[str, str]]:
    path = out / SKIPPED_FILE
    if not path.is_file():
        return {}
    try:
        items = json.loads(path.read_text(encoding="utf-8"))["skipped"]
        return {item["id"]: item for item in items}
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise DataError(f"{path} is unreadable ({e}): delete it (those clips will be retried)") from None


def make_extractors(asr: bool, spec: FeatureSpec) -> Extractors:
    try:
        extractors = Extractors.create(asr=asr)
        extractors.check(spec)
    except (ManifestError, AsrError, TextFeatureError, FeatureSpecError, OfflineError) as e:
        raise ConfigError(f"cannot build the feature extractors: {e}") from None
    return extractors


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
        for row in _progress(todo):
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
                _save_skipped(args.out, skipped)
    finally:
        shards.flush()
        _save_skipped(args.out, skipped)
        tally.seconds = time.perf_counter() - start
    return tally


def _progress(rows: list[ClipRow]) -> Iterator[ClipRow]:
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm():
        yield from tqdm(rows, desc="extract", unit="clip", disable=None)


def _save_skipped(out: Path, skipped: dict[str, Any]) -> None:
    write_json_atomic(out / SKIPPED_FILE, {"skipped": sorted(skipped.values(), key=lambda s: s["id"])})


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--raw", type=Path, required=True, help="folder holding Raw/<video_id>/<clip_id>.mp4")
    p.add_argument("--labels", type=Path, required=True, help="MMSA label.csv")
    p.add_argument("--out", type=Path, required=True, help="shard folder (created; resumed when it exists)")
    p.add_argument("--transcripts", choices=("gold", "asr"), default="gold")
    p.add_argument("--shard-size", type=int, default=500)
    p.add_argument("--checkpoint-every", type=int, default=50, help="rewrite the open shard every N clips")
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
    args.spec = default_feature_spec()


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
    ns = parse_args(sys.argv[1:])
    setup_logging(ns.verbose)
    sys.exit(run_main(lambda: main(ns), verbose=ns.verbose))
