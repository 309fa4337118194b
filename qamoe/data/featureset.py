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


def feature_stats(fs: FeatureSet, chunk_rows: int = 512) -> dict[Modality, tuple[np.ndarray, np.ndarray]]:
    """Per-modality, per-dimension mean and std over valid steps (std floored at 1e-6).

    Fitted on the training split; the model stores them as normalisation buffers and the spectrum uses the std as
    the unit of feature noise. Two passes over `chunk_rows` samples at a time, accumulated in float64 (the mean,
    then the squared deviations from it): the memory beside the features is a chunk's, not a float64 copy of
    every valid step (which for the audio stream of a corpus with the voice encoder's columns was gigabytes)."""
    stats = {}
    for m in MODALITIES:
        x, k = fs.feats[m], fs.masks[m]
        d = x.shape[-1]
        count = int(k.sum())
        if count < 2:
            stats[m] = (np.zeros(d, np.float32), np.ones(d, np.float32))
            continue
        chunks = [slice(s, s + chunk_rows) for s in range(0, len(x), chunk_rows)]
        total = np.zeros(d, np.float64)
        for c in chunks:
            total += x[c][k[c]].sum(axis=0, dtype=np.float64)
        mean = total / count
        squares = np.zeros(d, np.float64)
        for c in chunks:
            dev = x[c][k[c]].astype(np.float64) - mean
            squares += np.einsum("ij,ij->j", dev, dev)
        std = np.sqrt(squares / count)
        stats[m] = (mean.astype(np.float32), np.maximum(std, 1e-6).astype(np.float32))
    return stats
