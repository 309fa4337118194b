"""Planning the samples of a training corpus: everything random about one sample, fixed from (seed, id).

Used by tools/build_corpus.py (docs/CORPUS.md says what the corpus is and why). A sample is one labelled
transcript (`CorpusRow`); its `Plan` holds the espeak-ng voice that will speak it (`qamoe.corpus.synth`), whether
its text comes from the live ASR or the gold transcript, and its vision window from the face bank
(`qamoe.corpus.facebank`). Every choice comes from three generators spawned from
`SeedSequence(seed, spawn_key=(sha256(id),))` (`sample_rngs`), so a sample is a pure function of the seed, its
id, its row and the construction parameters, whatever the order, the number of workers or the interruptions.
The voice generator never sees the label: prosody carries none. The vision draw sees the label on the
training splits only (`PAIRED_SPLITS`, a stated augmentation); on every split used for selection or
reporting (valid, test and their twins) no input of a sample depends on its label (tests/integration/test_corpus.py,
`test_evaluation_inputs_are_label_independent`).

Splits: the official folds `train`, `valid`, `test`; `with_asr_twins` adds `test_asr`, every test row again
(id suffixed "#asr") with ASR text and the same draws (they are seeded by the row's `base` id);
`with_raw_twins` adds `train_raw` (a seeded share of the train rows) and `test_raw` (every test row), again
with the same draws plus one raw-media corruption (`qamoe.corpus.raw_corruptions`; id suffixed "#raw"): the
twin and its clean row differ only by the corruption, so training can use the clean row as the twin's
reconstruction target and the evaluation can pair them.

numpy only; no torch, no qamoe.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from qamoe.corpus.facebank import FaceBank, FaceBankConfig, PairingConfig, WindowIndex, draw_vision
from qamoe.corpus.raw_corruptions import (
    LEVELS,
    RAW_KINDS,
    STEP_KINDS,
    VIDEO_KINDS,
    RawCorruption,
    drop_steps,
)
from qamoe.corpus.synth import Voice, VoiceSpace, sample_voice
from qamoe.errors import ConfigError

SPLITS = ("train", "valid", "test")
ASR_SPLIT, ASR_SUFFIX = "test_asr", "#asr"
ASR_DRAWN_SPLITS = ("train", "valid")  # where --asr-fraction applies; test stays gold (test_asr is all ASR)
RAW_SUFFIX = "#raw"
RAW_SPLITS = {"train": "train_raw", "test": "test_raw"}  # clean split -> its raw twins' split
# The only splits whose face window may be drawn with the label (a training augmentation, docs/CORPUS.md).
# Every other split (valid: selection; test, test_asr, test_raw: reporting) draws it label-free.
PAIRED_SPLITS = ("train", "train_raw")


class CorpusConfigError(ConfigError):
    """An invalid `CorpusConfig`; the message names the fix (a ConfigError: exit 2)."""


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
    raw_train_fraction: float = 0.0  # share of train rows with a raw-corrupted twin (split train_raw)
    raw_test: bool = False  # every test row again with a raw corruption (split test_raw)
    pairing: PairingConfig = field(default_factory=PairingConfig)
    # splits whose face window is drawn with the label; recorded in corpus.json, so a corpus built before
    # evaluation splits were label-free (where valid and test were paired too) refuses to resume
    paired_splits: tuple[str, ...] = PAIRED_SPLITS
    voices: VoiceSpace = field(default_factory=VoiceSpace)
    bank: FaceBankConfig = field(default_factory=FaceBankConfig)

    def __post_init__(self) -> None:
        if not 0 <= self.asr_fraction <= 1:
            raise CorpusConfigError(f"--asr-fraction {self.asr_fraction}: use a share in [0, 1], e.g. 0.1")
        if not 0 <= self.raw_train_fraction <= 1:
            raise CorpusConfigError(f"--raw-train-fraction {self.raw_train_fraction}: use a share in [0, 1]")
        if self.seed < 0:
            raise CorpusConfigError(f"--seed {self.seed}: use a non-negative integer")
        if not set(self.paired_splits) <= set(PAIRED_SPLITS):
            raise CorpusConfigError(f"paired_splits {self.paired_splits}: the label may pair only training "
                                    f"splits {PAIRED_SPLITS}; evaluation inputs must not depend on the label")

    @property
    def needs_asr(self) -> bool:
        return self.asr_fraction > 0 or self.asr_test or self.raw_train_fraction > 0 or self.raw_test

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (tuples as lists), as the config reads back from corpus.json / extract.json."""
        return json.loads(json.dumps(asdict(self)))


@dataclass(frozen=True)
class Plan:
    """Everything random about one sample, fixed before the expensive work."""

    row: CorpusRow
    voice: Voice
    use_asr: bool
    vision: tuple[np.ndarray, np.ndarray]  # (values [steps, 145] float32, mask [steps] bool)
    record: dict[str, Any]  # its provenance line so far (the worker adds speech and window times)
    raw: RawCorruption | None = None  # the raw-media corruption of a "#raw" twin
    raw_seed: int = 0  # seeds the corruption's own randomness (noise, dropped blocks) in the worker


def with_asr_twins(rows: list[CorpusRow], asr_test: bool) -> list[CorpusRow]:
    """Rows in split order (train, valid, test), then the test rows' ASR twins when `asr_test`."""
    ordered = [r for s in SPLITS for r in rows if r.split == s]
    if asr_test:
        ordered += [CorpusRow(r.key + ASR_SUFFIX, r.base, r.text, r.label, ASR_SPLIT)
                    for r in rows if r.split == "test"]
    return ordered


def with_raw_twins(rows: list[CorpusRow], config: CorpusConfig) -> list[CorpusRow]:
    """`rows`, then a "#raw" twin of a seeded `raw_train_fraction` of the train rows (split train_raw) and,
    when `raw_test`, of every test row (split test_raw)."""
    twins = []
    for r in rows:
        wanted = (r.split == "train" and sample_rngs(config.seed, r.base)[3].random() < config.raw_train_fraction
                  or r.split == "test" and config.raw_test)
        if wanted:
            twins.append(CorpusRow(r.key + RAW_SUFFIX, r.base, r.text, r.label, RAW_SPLITS[r.split]))
    return rows + twins


def sample_rngs(seed: int, base: str) -> tuple[np.random.Generator, ...]:
    """Four independent generators (voice, asr choice, vision, raw corruption) from (seed, sample id) alone.
    (The first three are the same as when three were spawned: a child's key is its index.)"""
    digest = int.from_bytes(hashlib.sha256(base.encode("utf-8")).digest()[:8], "little")
    return tuple(np.random.default_rng(s) for s in np.random.SeedSequence(seed, spawn_key=(digest,)).spawn(4))


def draw_raw(rng: np.random.Generator) -> tuple[RawCorruption, int]:
    """A twin's corruption: kind and level uniform over RAW_KINDS x LEVELS, and a seed for its noise."""
    rng.random()  # the twin-selection draw of `with_raw_twins`: keep the stream the same for every split
    kind = RAW_KINDS[int(rng.integers(len(RAW_KINDS)))]
    level = LEVELS[int(rng.integers(len(LEVELS)))]
    return RawCorruption(kind, level), int(rng.integers(2**31))


def plan_sample(row: CorpusRow, config: CorpusConfig, index: WindowIndex,
                banks: dict[tuple[str, float], FaceBank] | None = None) -> Plan:
    """`banks`: the face bank extracted through each video kind and level (needed for "#raw" twins)."""
    rng_voice, rng_asr, rng_vision, rng_raw = sample_rngs(config.seed, row.base)
    voice = sample_voice(rng_voice, config.voices)  # the label is not an argument: prosody is label-free
    drawn_asr = bool(rng_asr.random() < config.asr_fraction)  # drawn for every row: the stream stays aligned
    raw, raw_seed = draw_raw(rng_raw) if row.split in RAW_SPLITS.values() else (None, 0)
    use_asr = (row.split == ASR_SPLIT or (row.split in (*ASR_DRAWN_SPLITS, RAW_SPLITS["train"]) and drawn_asr)
               or (raw is not None and raw.kind == "asr_noise"))
    draw = draw_vision(index, row.label if row.split in config.paired_splits else None, rng_vision,
                       config.pairing)
    if draw.window is None:
        n, dim = config.bank.steps, index.bank.sequences[0].values.shape[1]
        vision = (np.zeros((n, dim), np.float32), np.zeros(n, bool))
    elif raw is not None and raw.kind in VIDEO_KINDS:
        if banks is None or (raw.kind, raw.severity) not in banks:
            raise CorpusConfigError(f"no face bank extracted through {raw.kind} at {raw.severity}")
        vision = index.cut(draw.window, banks[(raw.kind, raw.severity)])
    else:
        vision = index.cut(draw.window)
    if raw is not None and raw.kind in STEP_KINDS:
        mask = drop_steps(vision[1], raw, np.random.default_rng(raw_seed))
        vision = (np.where(mask[:, None], vision[0], 0.0).astype(np.float32), mask)
    record = {"id": row.key, "split": row.split, **voice.to_dict(), "text": "asr" if use_asr else "gold",
              **draw.to_dict(index)}
    if raw is not None:
        record["raw"] = raw.to_dict()
    return Plan(row, voice, use_asr, vision, record, raw, raw_seed)
