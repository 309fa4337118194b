"""A label-balanced training view of a real-affect corpus folder (FER2013 faces, emotional speech): a training
resampling only.

Real-affect sets are not balanced in valence. Of the FER2013 photos with a face found in the train split,
about 28% are happy (+2), 19% neutral (0) and 53% one of the four negative classes (-1.5 to -2), a mean target
of about -0.5; RAVDESS and EmoDB lean the same way (four negative emotions against happy and calm). Trained on
such rows beside MOSI/MOSEI, whose speech is synthesised, a model learns a shortcut as well as affect: "a real
face" or "a real voice" means negative. Measured (docs/results/affect/summary.md): neutral faces read
negative, and the neutral read speech of the GRID clips, heard by the voice path alone, reads -1.3.

The balanced view keeps every row with a target >= 0 and the negative rows with the smallest sha256(id), up to
the count that brings the mean target nearest `target_mean` (0) (`select_balanced`). It is applied to the
train split only: the valid split (selection) and the test split (reporting) are copied whole, every row
whatever its label. Choosing training rows by their label is allowed (a training resampling, like the face
bank's pairing); choosing evaluation rows by it is not.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from qamoe.data.gather import read_shards
from qamoe.data.shards import read_shard_meta, write_shard
from qamoe.errors import ConfigError, DataError


def select_balanced(ids: np.ndarray, labels: np.ndarray, target_mean: float = 0.0) -> np.ndarray:
    """A bool mask: every row with label >= 0, and the negative rows with the smallest sha256(id) up to the
    count whose sum brings the mean label nearest `target_mean` (all of them when the mean is above it)."""
    labels = np.asarray(labels, np.float64)
    neg = np.flatnonzero(labels < 0)
    keep = labels >= 0
    if neg.size == 0 or labels.mean() >= target_mean:
        return np.ones(labels.size, bool)
    order = neg[np.argsort([hashlib.sha256(str(ids[i]).encode()).hexdigest() for i in neg], kind="stable")]
    base_sum, base_n = labels[keep].sum(), int(keep.sum())
    sums = base_sum + np.concatenate([[0.0], np.cumsum(labels[order])])
    means = sums / np.maximum(base_n + np.arange(order.size + 1), 1)
    n = int(np.argmin(np.abs(means - target_mean)))
    keep[order[:n]] = True
    return keep


def write_balanced(src: Path, out: Path, *, created_by: str, shard_size: int = 500, target_mean: float = 0.0,
                   relabel: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None) -> dict[str, int]:  # fmt: skip
    """`out` gets `src`'s train split balanced (`select_balanced`) and its valid and test splits whole (the
    trainer needs train and valid; test is copied where `src` has it: a build of `--splits train,valid` has
    none); returns counts per split. `relabel(ids, labels)`: new labels for every split's rows first (another
    emotion -> valence map, qamoe.corpus.affect.relabel), then the balance."""
    if out.resolve() == src.resolve():
        raise ConfigError(f"--balanced-out {out} must differ from --out: the balanced view is a second folder")
    out.mkdir(parents=True, exist_ok=True)
    if any(out.glob("*.npz")):
        raise ConfigError(f"{out} already holds shards: remove it or choose another --balanced-out")
    counts = {}
    present = {read_shard_meta(p)["split"] for p in sorted(src.glob("*.npz"))}
    for split in ("train", "valid", "test"):
        if split not in present and split == "test":
            continue
        if split not in present:
            raise DataError(f"{src} has no {split} shards: build the corpus first")
        fs, meta = read_shards(src, split=split)
        if relabel is not None:
            fs = dataclasses.replace(fs, labels=relabel(fs.ids, fs.labels))
        if split == "train":
            fs = fs.subset(np.flatnonzero(select_balanced(fs.ids, fs.labels, target_mean)))
        for k, start in enumerate(range(0, len(fs), shard_size)):
            part = fs.subset(slice(start, start + shard_size))
            write_shard(out / f"{split}-{k:05d}.npz", part, split=split, feature_spec=meta["feature_spec"],
                        created_by=created_by)  # fmt: skip
        counts[split] = len(fs)
    return counts
