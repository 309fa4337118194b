"""Planning the samples of a training corpus: everything random about one sample, fixed from (seed, id).

Used by tools/build_corpus.py (docs/CORPUS.md says what the corpus is and why). A sample is one labelled
transcript (`CorpusRow`); its `Plan` holds the espeak-ng voice that will speak it (`edge.features.synth`), whether
its text comes from the live ASR or the gold transcript, and its vision window from the face bank
(`edge.features.facebank`). Every choice comes from three generators spawned from
`SeedSequence(seed, spawn_key=(sha256(id),))` (`sample_rngs`), so a sample is a pure function of the seed, its
id, its row and the construction parameters, whatever the order, the number of workers or the interruptions.
The voice generator never sees the label: prosody carries none.

Splits: the official folds `train`, `valid`, `test`; `with_asr_twins` adds `test_asr`, every test row again
(id suffixed "#asr") with ASR text and the same draws (they are seeded by the row's `base` id).

numpy only; no torch, no qamoe.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edge.features.facebank import FaceBankConfig, PairingConfig, WindowIndex, draw_vision
from edge.features.synth import Voice, VoiceSpace, sample_voice

SPLITS = ("train", "valid", "test")
ASR_SPLIT, ASR_SUFFIX = "test_asr", "#asr"
ASR_DRAWN_SPLITS = ("train", "valid")  # where --asr-fraction applies; test stays gold (test_asr is all ASR)


class CorpusConfigError(ValueError):
    """An invalid `CorpusConfig`; the message names the fix."""


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
            raise CorpusConfigError(f"--asr-fraction {self.asr_fraction}: use a share in [0, 1], e.g. 0.1")
        if self.seed < 0:
            raise CorpusConfigError(f"--seed {self.seed}: use a non-negative integer")

    @property
    def needs_asr(self) -> bool:
        return self.asr_fraction > 0 or self.asr_test

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


def with_asr_twins(rows: list[CorpusRow], asr_test: bool) -> list[CorpusRow]:
    """Rows in split order (train, valid, test), then the test rows' ASR twins when `asr_test`."""
    ordered = [r for s in SPLITS for r in rows if r.split == s]
    if asr_test:
        ordered += [CorpusRow(r.key + ASR_SUFFIX, r.base, r.text, r.label, ASR_SPLIT)
                    for r in rows if r.split == "test"]
    return ordered


def sample_rngs(seed: int, base: str) -> tuple[np.random.Generator, ...]:
    """Three independent generators (voice, asr choice, vision) from (seed, sample id) alone."""
    digest = int.from_bytes(hashlib.sha256(base.encode("utf-8")).digest()[:8], "little")
    return tuple(np.random.default_rng(s) for s in np.random.SeedSequence(seed, spawn_key=(digest,)).spawn(3))


def plan_sample(row: CorpusRow, config: CorpusConfig, index: WindowIndex) -> Plan:
    rng_voice, rng_asr, rng_vision = sample_rngs(config.seed, row.base)
    voice = sample_voice(rng_voice, config.voices)  # the label is not an argument: prosody is label-free
    drawn_asr = bool(rng_asr.random() < config.asr_fraction)  # drawn for every row: the stream stays aligned
    use_asr = row.split == ASR_SPLIT or (row.split in ASR_DRAWN_SPLITS and drawn_asr)
    draw = draw_vision(index, row.label, rng_vision, config.pairing)
    if draw.window is None:
        n, dim = config.bank.steps, index.bank.sequences[0].values.shape[1]
        vision = (np.zeros((n, dim), np.float32), np.zeros(n, bool))
    else:
        vision = index.cut(draw.window)
    record = {"id": row.key, "split": row.split, **voice.to_dict(), "text": "asr" if use_asr else "gold",
              **draw.to_dict(index)}
    return Plan(row, voice, use_asr, vision, record)
