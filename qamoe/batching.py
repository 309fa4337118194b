"""The numpy -> torch boundary: FeatureSet slices as tensor dicts."""

from __future__ import annotations

import numpy as np
import torch

from qamoe.data.featureset import FeatureSet
from qamoe.modality import MODALITIES, Modality


def to_tensors(fs: FeatureSet) -> tuple[dict[Modality, torch.Tensor], dict[Modality, torch.Tensor], torch.Tensor]:
    feats = {m: torch.from_numpy(np.ascontiguousarray(fs.feats[m], dtype=np.float32)) for m in MODALITIES}
    masks = {m: torch.from_numpy(np.ascontiguousarray(fs.masks[m])) for m in MODALITIES}
    return feats, masks, torch.from_numpy(np.asarray(fs.labels, dtype=np.float32))


def batches(n: int, batch_size: int, order: np.ndarray | None = None) -> list[np.ndarray]:
    idx = np.arange(n) if order is None else order
    return [idx[i : i + batch_size] for i in range(0, n, batch_size)]
