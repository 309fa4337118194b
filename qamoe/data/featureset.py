"""`FeatureSet`: N samples of per-modality feature sequences with validity masks and sentiment labels.

Every loader (MMSA pickles, shards, the synthetic benchmark) produces one, every corruption consumes and returns
one, and the trainer batches from it. Arrays are numpy; the model side converts to torch at the batch boundary.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from qamoe.errors import DataError
from qamoe.modality import MODALITIES, Modality


@dataclass(frozen=True)
class FeatureSet:
    """feats[m]: [N, T_m, D_m] float32; masks[m]: [N, T_m] bool (True = a valid step); labels: [N] float32 in
    [-3, 3]; ids: [N] str. Padding steps (mask False) hold zeros."""

    feats: Mapping[Modality, np.ndarray]
    masks: Mapping[Modality, np.ndarray]
    labels: np.ndarray
    ids: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.labels)
        if self.labels.ndim != 1:
            raise DataError(f"labels must be 1-D, got shape {self.labels.shape}")
        if len(self.ids) != n:
            raise DataError(f"{len(self.ids)} ids for {n} labels")
        if set(self.feats) != set(MODALITIES) or set(self.masks) != set(MODALITIES):
            raise DataError(
                f"a FeatureSet holds every modality ({', '.join(map(str, MODALITIES))}); an absent modality is an"
                " all-False mask, not a missing key"
            )
        for m in MODALITIES:
            x, k = self.feats[m], self.masks[m]
            if x.ndim != 3 or x.shape[0] != n:
                raise DataError(f"{m} features must be [N={n}, T, D], got {x.shape}")
            if k.shape != x.shape[:2] or k.dtype != np.bool_:
                raise DataError(f"{m} mask must be bool [N, T] = {x.shape[:2]}, got {k.dtype} {k.shape}")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def dims(self) -> dict[Modality, int]:
        return {m: int(self.feats[m].shape[-1]) for m in MODALITIES}

    @property
    def seq_lens(self) -> dict[Modality, int]:
        return {m: int(self.feats[m].shape[1]) for m in MODALITIES}

    def subset(self, index: np.ndarray | slice) -> FeatureSet:
        return FeatureSet(
            feats={m: self.feats[m][index] for m in MODALITIES},
            masks={m: self.masks[m][index] for m in MODALITIES},
            labels=self.labels[index],
            ids=self.ids[index],
        )

    def modality(self, m: Modality, index: np.ndarray | slice = slice(None)) -> tuple[np.ndarray, np.ndarray]:
        """(features, mask) of modality `m` at rows `index` (views for a slice)."""
        return self.feats[m][index], self.masks[m][index]

    def replace(
        self,
        feats: Mapping[Modality, np.ndarray] | None = None,
        masks: Mapping[Modality, np.ndarray] | None = None,
    ) -> FeatureSet:
        """A copy with some modalities' features and/or masks replaced (the others are shared, not copied)."""
        return FeatureSet(
            feats={m: (feats or {}).get(m, self.feats[m]) for m in MODALITIES},
            masks={m: (masks or {}).get(m, self.masks[m]) for m in MODALITIES},
            labels=self.labels,
            ids=self.ids,
        )


@dataclass(frozen=True, eq=False)
class RepeatedRows:
    """The rows of `base` in the order `rows`, some of them more than once, without copying them: a training
    split whose corpora are repeated (`shards:DIR*K`, qamoe.data.sources) holds each distinct row once. The
    trainer's view of a FeatureSet: len, dims, seq_lens, labels, ids, `subset` (a FeatureSet of those rows, the
    same as the repeated set's) and `modality`. `feats`/`masks` copy every row out (a whole repeated set: only for
    small sets and tests)."""

    base: FeatureSet
    rows: np.ndarray

    def __post_init__(self) -> None:
        if self.rows.ndim != 1 or (self.rows.size and not 0 <= self.rows.min() <= self.rows.max() < len(self.base)):
            raise DataError(f"rows must be 1-D indices into the {len(self.base)} rows of the base set")

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def dims(self) -> dict[Modality, int]:
        return self.base.dims

    @property
    def seq_lens(self) -> dict[Modality, int]:
        return self.base.seq_lens

    @property
    def labels(self) -> np.ndarray:
        return self.base.labels[self.rows]

    @property
    def ids(self) -> np.ndarray:
        return self.base.ids[self.rows]

    @property
    def feats(self) -> dict[Modality, np.ndarray]:
        return {m: self.base.feats[m][self.rows] for m in MODALITIES}

    @property
    def masks(self) -> dict[Modality, np.ndarray]:
        return {m: self.base.masks[m][self.rows] for m in MODALITIES}

    def subset(self, index: np.ndarray | slice) -> FeatureSet:
        return self.base.subset(self.rows[index])

    def modality(self, m: Modality, index: np.ndarray | slice = slice(None)) -> tuple[np.ndarray, np.ndarray]:
        return self.base.modality(m, self.rows[index])


TrainRows = FeatureSet | RepeatedRows  # what the trainer reads (tools/train.py: load_source(training=True))


def feature_stats(fs: TrainRows, chunk_rows: int = 512) -> dict[Modality, tuple[np.ndarray, np.ndarray]]:
    """Per-modality, per-dimension mean and std over valid steps (std floored at 1e-6).

    Fitted on the training split; the model stores them as normalisation buffers and the spectrum uses the std as
    the unit of feature noise. Two passes over `chunk_rows` samples at a time, accumulated in float64 (the mean,
    then the squared deviations from it): the memory beside the features is a chunk's, not a float64 copy of
    every valid step (which for the audio stream of a corpus with the voice encoder's columns was gigabytes)."""
    stats = {}
    chunks = [slice(s, s + chunk_rows) for s in range(0, len(fs), chunk_rows)]
    for m in MODALITIES:
        d = fs.dims[m]
        count, total = 0, np.zeros(d, np.float64)
        for c in chunks:
            x, k = fs.modality(m, c)
            count += int(k.sum())
            total += x[k].sum(axis=0, dtype=np.float64)
        if count < 2:
            stats[m] = (np.zeros(d, np.float32), np.ones(d, np.float32))
            continue
        mean = total / count
        squares = np.zeros(d, np.float64)
        for c in chunks:
            x, k = fs.modality(m, c)
            dev = x[k].astype(np.float64) - mean
            squares += np.einsum("ij,ij->j", dev, dev)
        std = np.sqrt(squares / count)
        stats[m] = (mean.astype(np.float32), np.maximum(std, 1e-6).astype(np.float32))
    return stats
