"""FER2013 photos through the live camera path into shards: each photo placed in a webcam frame
(`qamoe.corpus.fer.place`), held still for one window (`qamoe.corpus.offline.extract_still`: the live visual
extractor, BlazeFace then the FER CNN, on the frame; no microphone, no words). One window per photo. Labels
and splits: `qamoe.corpus.fer`.

No input depends on the label: the frame is the photo placed by a generator seeded from its name, audio and
text are absent for every photo; the label only goes into the shard's label column
(tests/integration/test_fer_corpus.py permutes the labels and compares the inputs bit for bit).

A photo in which BlazeFace finds no face goes to the split `<split>_noface` (`train_noface`, ...): its window
has no face, no voice and no words, so nothing in it carries the label, and trained on it the model would
learn the class mix's mean valence (about -0.5) as the answer to an empty window, which would then read an
empty room as negative. The trainer reads `train` (and `valid` for selection) only; the evaluation tools can
still count the photos without a face (the live path shows them all). Which split a photo goes to depends on
the detector's output on the placed photo, never on the label.

Output folder (resumable, as `qamoe.corpus.affect_build`'s):
  `<split>-NNNNN.npz`   shards in the corpus format (`shards:OUT` for tools/train.py)
  provenance.jsonl      one line per photo: key, expression, label, split, face, det_score, expression argmax
  extract.json          the options a re-run must match
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.features.spec import FeatureSpec, default_feature_spec
from edge.features.visual import EXPRESSIONS, VISION_COLUMNS
from qamoe.corpus.extract_io import (
    ShardSet,
    check_run_options,
    load_skipped,
    progress,
    sample_featureset,
    save_skipped,
)
from qamoe.corpus.fer import FerData, FerFace, WebcamPlacement, place
from qamoe.corpus.jobs import CLIP_ERRORS, extractors, run_jobs
from qamoe.corpus.offline import extract_still
from qamoe.modality import Modality

logger = logging.getLogger(__name__)
PROVENANCE = "provenance.jsonl"
NO_FACE_SUFFIX = "_noface"  # the split of a photo in which BlazeFace finds no face
_PRESENT, _SCORE = VISION_COLUMNS.index("face_present"), VISION_COLUMNS.index("det_score")
_EXPR = slice(VISION_COLUMNS.index("expr_angry"), VISION_COLUMNS.index("expr_neutral") + 1)


@dataclass(frozen=True)
class FaceJob:
    key: str
    name: str  # seeds the placement
    photo: np.ndarray  # uint8 [48, 48]
    placement: WebcamPlacement


@dataclass(frozen=True, eq=False)
class FaceResult:
    """One photo's three streams ((values, mask) each), or why it failed."""

    key: str
    error: str | None = None
    streams: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
    seconds: float = 0.0


def make_face(job: FaceJob) -> FaceResult:
    """The photo's still window through the live extractors (`init_worker(asr=False, ...)` first)."""
    t0 = time.perf_counter()
    try:
        frame = place(job.photo, job.name, job.placement)
        clip = extract_still(frame, spec=extractors().feature_spec(), extractors=extractors())
    except CLIP_ERRORS as e:
        return FaceResult(job.key, error=f"{type(e).__name__}: {e}")
    streams = {name: (s.values, s.mask) for name, s in clip.streams.items()}
    return FaceResult(job.key, streams=streams, seconds=time.perf_counter() - t0)


def jobs_of(data: FerData, faces: list[FerFace], placement: WebcamPlacement) -> list[FaceJob]:
    return [FaceJob(f.key, f.key.split("/", 1)[1], data.images[f.index], placement) for f in faces]


def run_faces(jobs: list[FaceJob], workers: int, voice_encoder: bool = False) -> Iterator[FaceResult]:
    """Results in the order of `jobs` (shards are the same with 1 or N workers)."""
    yield from run_jobs(make_face, jobs, workers, False, voice_encoder)


def build(data: FerData, faces: list[FerFace], out: Path, *, workers: int, limit: int | None, options: dict,
          shard_size: int, checkpoint_every: int, created_by: str,
          placement: WebcamPlacement | None = None, spec: FeatureSpec | None = None) -> dict[str, int]:  # fmt: skip
    """Make the photos not yet in a shard of `out` (at most `limit` this run); returns counts made/skipped/
    done_before/faces (windows with a face)."""
    placement = placement if placement is not None else WebcamPlacement()
    out.mkdir(parents=True, exist_ok=True)
    check_run_options(out, options)
    spec = spec if spec is not None else default_feature_spec()
    shards = ShardSet(out, spec, shard_size=shard_size, checkpoint_every=checkpoint_every,
                      created_by=created_by)  # fmt: skip
    skipped = load_skipped(out)
    todo = [f for f in faces if f.key not in shards.done and f.key not in skipped]
    done_before = len(faces) - len(todo)
    todo = todo[:limit] if limit is not None else todo
    logger.info("%d photo(s) to make (%d already made or skipped)", len(todo), done_before)
    by_key = {f.key: f for f in todo}
    made = with_face = 0
    try:
        faces_made = run_faces(jobs_of(data, todo, placement), workers, spec.voice_encoder)
        with (out / PROVENANCE).open("a", encoding="utf-8") as prov, \
                progress(faces_made, total=len(todo), unit="photo") as results:
            for r in results:
                face = by_key[r.key]
                if r.error is not None or r.streams is None:
                    skipped[r.key] = {"id": r.key, "index": face.index, "reason": r.error or "no streams"}
                    logger.warning("skipped %s: %s", r.key, r.error)
                    continue
                streams = {Modality(name): vm for name, vm in r.streams.items()}
                first = r.streams["vision"][0][0]
                present = bool(first[_PRESENT] > 0.5)
                with_face += present
                split = face.split if present else f"{face.split}{NO_FACE_SUFFIX}"
                shards.add(split, sample_featureset(streams, face.label, face.key))
                prov.write(json.dumps({
                    "id": face.key, "index": face.index, "expression": face.expression, "label": face.label,
                    "split": split, "face": present, "det_score": round(float(first[_SCORE]), 4),
                    "cnn": EXPRESSIONS[int(np.argmax(first[_EXPR]))] if present else None,
                    "seconds": round(r.seconds, 4),
                }) + "\n")  # fmt: skip
                made += 1
    finally:
        shards.flush()
        save_skipped(out, skipped)
    return {"made": made, "skipped": len(skipped), "done_before": done_before, "faces": with_face}
