"""A bank of real face feature sequences, and a sampler that pairs 4 s windows of it with labelled samples.

Used to build a training corpus when the labelled data has no video (tools/build_corpus.py, docs/CORPUS.md).
Real videos go once through the live `VisualFeatureExtractor` on its 10 Hz grid (`extract_sequence`); the
resulting per-step feature rows are the bank. A sample's vision stream is a window of `steps` consecutive
rows of one sequence, cut at a random offset (`WindowIndex.cut`): real frames, real detector and expression
outputs, real timing, but NOT the face of the person whose words carry the label.

Pairing (`draw_vision`), with an explicit `numpy.random.Generator` and a `PairingConfig`:
  - with probability `no_face_fraction` the sample has no face: an all-False mask. In the live feature space
    a window without a face and a window without a camera are the same thing (the window assembler zeroes
    masked steps), so the two are one case here;
  - otherwise, with probability `p_agree`, a window drawn uniformly from the face windows whose valence class
    equals the label's sign; otherwise a window drawn uniformly from all face windows.
The label-driven branch is a TRAINING augmentation only: `qamoe.corpus.plan.plan_sample` passes the label for
the training splits and None for every split used for selection or reporting, whose face windows are then
drawn without it (docs/CORPUS.md, "Vision").
A window's valence is the mean `valence_proxy` over its face steps, its class +1 / -1 above / below
+-`valence_tau` and 0 between; a label's class is its sign (0 for exactly 0). The probability that a face
window's class matches the label's is therefore p_agree + (1 - p_agree) q, q the share of face windows in
that class: a weak, artificial link between the expression columns and the label, stated so that nobody
mistakes it for audiovisual evidence. A face window has a face in at least `min_face_share` of its steps; a
sequence shorter than the window gives one window with its early steps masked (as `extract_clip` does for
a short clip: a camera that started less than a window ago).

numpy + OpenCV + onnxruntime (through the extractor) only; no torch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.features.visual import VISION_COLUMNS, VisualFeatureExtractor, VisualFrame
from qamoe.errors import ConfigError, QAMoEError

logger = logging.getLogger(__name__)

BANK_FORMAT = "qamoe-facebank"
BANK_VERSION = 1
VALENCE_COLUMN = VISION_COLUMNS.index("valence_proxy")
FACE, NO_FACE = "face", "no_face"
FrameFn = Callable[[np.ndarray], np.ndarray]


class FaceBankError(QAMoEError, RuntimeError):
    """A video cannot be read, a bank file is stale or damaged, or the bank has no usable windows (exit 1
    under `qamoe.cli.run_main`; the corpus build rebuilds a stale bank)."""


class FaceBankConfigError(FaceBankError, ConfigError):
    """An invalid `FaceBankConfig` or `PairingConfig` (a ConfigError: exit 2)."""


@dataclass(frozen=True)
class FaceBankConfig:
    """Window geometry (the feature spec's vision stream) and the face-window rule."""

    steps: int = 40
    rate_hz: float = 10.0
    min_face_share: float = 0.5
    valence_tau: float = 0.1
    default_fps: float = 25.0  # for containers that state none

    def __post_init__(self) -> None:
        if self.steps < 1 or not 0 < self.rate_hz <= 100:
            raise FaceBankConfigError(f"steps={self.steps}, rate_hz={self.rate_hz}: use the spec's 40 and 10")
        if not 0 < self.min_face_share <= 1:
            raise FaceBankConfigError(f"min_face_share={self.min_face_share} must lie in (0, 1], e.g. 0.5")
        if not 0 <= self.valence_tau < 1:
            raise FaceBankConfigError(f"valence_tau={self.valence_tau} must lie in [0, 1), e.g. 0.1")


@dataclass(frozen=True)
class PairingConfig:
    """How vision windows are paired with labels (module docstring)."""

    p_agree: float = 0.6
    no_face_fraction: float = 0.1

    def __post_init__(self) -> None:
        for name in ("p_agree", "no_face_fraction"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise FaceBankConfigError(f"{name}={value} must be a probability in [0, 1]")


@dataclass(frozen=True, eq=False)
class FaceSequence:
    """One video on the 10 Hz grid: `values` [K, 145] float32 (zeros where no face), `present` [K] bool."""

    name: str
    values: np.ndarray
    present: np.ndarray


@dataclass(frozen=True, eq=False)
class FaceBank:
    sequences: tuple[FaceSequence, ...]
    key: str  # what the bank was built from (`bank_key`)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """One .npz (no pickle), written beside the target and renamed over it."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"format": BANK_FORMAT, "version": BANK_VERSION, "key": self.key,
                "names": [s.name for s in self.sequences], "lengths": [len(s.present) for s in self.sequences]}
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with tmp.open("wb") as f:
            np.savez(f, meta=np.array(json.dumps(meta)),
                     values=np.concatenate([s.values for s in self.sequences]),
                     present=np.concatenate([s.present for s in self.sequences]))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str], key: str) -> FaceBank:
        """The bank at `path`; FaceBankError if it was built from other videos or extractors than `key`."""
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"][()]))
                values, present = z["values"], z["present"]
        except (OSError, ValueError, KeyError) as exc:
            raise FaceBankError(f"{path} is not a readable face bank ({exc}): delete it to rebuild") from exc
        if meta.get("format") != BANK_FORMAT or meta.get("key") != key:
            raise FaceBankError(f"{path} was built from other videos or extractors: delete it to rebuild")
        bounds = np.cumsum([0] + meta["lengths"])
        seqs = tuple(FaceSequence(n, values[a:b], present[a:b])
                     for n, a, b in zip(meta["names"], bounds[:-1], bounds[1:]))
        return cls(seqs, key)


def bank_key(videos: Sequence[Path], extractor_identity: str) -> str:
    """sha256 over the videos' names and bytes and what extracted them (spec digest, artifacts, config)."""
    h = hashlib.sha256(extractor_identity.encode())
    for path in videos:
        h.update(path.name.encode())
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def extract_sequence(path: Path, visual: VisualFeatureExtractor, config: FaceBankConfig,
                     frame_fn: FrameFn | None = None) -> FaceSequence:
    """Every tick of the 10 Hz grid from the video's first frame to its end, through the live extractor;
    `frame_fn` transforms each decoded frame first (a raw-media corruption, `qamoe.corpus.raw_corruptions`)."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise FaceBankError(f"OpenCV cannot open {path}: the file is missing, corrupt or not a video")
    fps = cap.get(cv2.CAP_PROP_FPS)
    period_ns = 1e9 / (fps if math.isfinite(fps) and 0 < fps <= 1000 else config.default_fps)
    sampler = visual.sampler(origin_ns=0)
    rows: list[VisualFrame] = []
    last = -1
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            pos_ms = cap.get(cv2.CAP_PROP_POS_MSEC)
            t = round(pos_ms * 1e6) if math.isfinite(pos_ms) else -1
            t = max(t if t > last else last + round(period_ns), 0)  # missing or stuck container times
            last = t
            rows += [_process(visual, s) for s in sampler.push(t, frame if frame_fn is None else frame_fn(frame))]
    finally:
        cap.release()
    rows += [_process(visual, s) for s in sampler.finish()]
    if not rows:
        raise FaceBankError(f"{path} holds no decodable frames: the file is corrupt or not a video")
    present = np.array([r.present for r in rows], bool)
    values = np.stack([r.values if r.present else np.zeros_like(r.values) for r in rows]).astype(np.float32)
    logger.info("face bank: %s: %d steps, face in %d", path.name, len(rows), int(present.sum()))
    return FaceSequence(path.name, values, present)


def _process(visual: VisualFeatureExtractor, sample: object) -> VisualFrame:
    frame, tick = sample.frame, sample.tick_ns
    return visual.process(frame, tick) if frame is not None else VisualFrame.absent(tick)


def build_bank(videos: Sequence[Path], visual: VisualFeatureExtractor, config: FaceBankConfig,
               key: str, frame_fn: FrameFn | None = None) -> FaceBank:
    return FaceBank(tuple(extract_sequence(p, visual, config, frame_fn) for p in videos), key)


@dataclass(frozen=True)
class Window:
    """Steps [end - steps, end) of sequence `seq` (negative indices: masked steps before its start)."""

    seq: int
    end: int
    face_share: float
    valence: float
    cls: int


class WindowIndex:
    """Every face window of a bank (each end step of each sequence), grouped by valence class."""

    def __init__(self, bank: FaceBank, config: FaceBankConfig) -> None:
        self.bank, self.config = bank, config
        self.windows: list[Window] = []
        for i, seq in enumerate(bank.sequences):
            k = len(seq.present)
            for end in range(min(config.steps, k), k + 1):
                w = self._window(i, end)
                if w.face_share >= config.min_face_share:
                    self.windows.append(w)
        if not self.windows:
            raise FaceBankError("the face bank has no window with a face: add videos that show a face")
        self.by_class = {c: [w for w in self.windows if w.cls == c] for c in (-1, 0, 1)}
        counts = {c: len(v) for c, v in self.by_class.items()}
        logger.info("face bank: %d face windows, by valence class %s", len(self.windows), counts)

    def _window(self, seq: int, end: int) -> Window:
        present = self.bank.sequences[seq].present[max(0, end - self.config.steps):end]
        valence = self.bank.sequences[seq].values[max(0, end - self.config.steps):end, VALENCE_COLUMN]
        share = float(present.sum()) / self.config.steps
        v = float(valence[present].mean()) if present.any() else 0.0
        cls = 1 if v > self.config.valence_tau else -1 if v < -self.config.valence_tau else 0
        return Window(seq, end, share, v, cls)

    def class_share(self, cls: int) -> float:
        """q: the share of face windows in valence class `cls`."""
        return len(self.by_class[cls]) / len(self.windows)

    def cut(self, w: Window, bank: FaceBank | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(values [steps, 145] float32, mask [steps] bool) of window `w`; copies. `bank`: the same videos
        extracted through a raw corruption (same sequences and steps) to cut from instead."""
        seq, n = (bank or self.bank).sequences[w.seq], self.config.steps
        values = np.zeros((n, len(VISION_COLUMNS)), np.float32)
        mask = np.zeros(n, bool)
        lo = max(0, w.end - n)
        values[n - (w.end - lo):] = seq.values[lo:w.end]
        mask[n - (w.end - lo):] = seq.present[lo:w.end]
        values[~mask] = 0.0
        return values, mask


@dataclass(frozen=True)
class VisionDraw:
    """What `draw_vision` chose: kind FACE or NO_FACE, the window (None for NO_FACE), and whether the window
    was drawn from the label's class (`paired`) rather than uniformly."""

    kind: str
    window: Window | None
    paired: bool

    def to_dict(self, index: WindowIndex) -> dict[str, object]:
        if self.window is None:
            return {"vision": self.kind}
        w = self.window
        return {"vision": self.kind, "video": index.bank.sequences[w.seq].name, "end_step": w.end,
                "valence": round(w.valence, 4), "valence_class": w.cls, "paired": self.paired}


def label_class(label: float) -> int:
    return 1 if label > 0 else -1 if label < 0 else 0


def draw_vision(index: WindowIndex, label: float | None, rng: np.random.Generator,
                config: PairingConfig) -> VisionDraw:
    """One pairing draw (module docstring). `label` None: a label-free draw (no face with probability
    `no_face_fraction`, else a window uniform over all face windows), the only kind an evaluation split may
    use. Always consumes three uniforms, so the stream of draws of one sample does not depend on which branch
    was taken, nor on whether the label was given."""
    u_face, u_pair, u_pick = rng.random(3)
    if u_face < config.no_face_fraction:
        return VisionDraw(NO_FACE, None, False)
    pool = index.by_class[label_class(label)] if label is not None else []
    paired = bool(u_pair < config.p_agree) and bool(pool)
    pool = pool if paired else index.windows
    return VisionDraw(FACE, pool[min(int(u_pick * len(pool)), len(pool) - 1)], paired)
