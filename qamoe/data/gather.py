"""Reading many shards as one `FeatureSet`: whole folders (`read_shards`), chosen rows of chosen shards in a
chosen order (`gather_shards`: joined corpora, repeats, leave-outs; `qamoe.data.sources`), and feature sets
already in memory (`concat_featuresets`). Shorter sequences are padded to the longest with zeros and False
masks. The shard format itself: `qamoe.data.shards`."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qamoe.data.featureset import FeatureSet, RepeatedRows
from qamoe.data.shards import (
    SHARD_FORMAT,
    SHARD_VERSION,
    check_spec,
    feature_shapes,
    normalize_spec,
    read_shard,
    read_shard_meta,
)
from qamoe.errors import DataError
from qamoe.modality import MODALITIES, Modality

logger = logging.getLogger(__name__)


def read_shards(
    paths_or_dir: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    split: str | None = None,
    expect_spec: Mapping[str, Any] | None = None,
) -> tuple[FeatureSet, dict[str, Any]]:
    """Read and concatenate shards (a directory's *.npz in file-name order, or the given paths, in that order).

    All shards read together must share one feature_spec. `split` keeps only the shards of that split. Returns the
    concatenated set (shorter sequences padded, see the module docstring) and a combined meta: format, version,
    split (the common split, or None when they differ), feature_spec, created_by (the distinct values, joined with
    ", "), n (total), shards (the paths read, as strings)."""
    paths = _shard_paths(paths_or_dir)
    metas = {p: read_shard_meta(p) for p in paths}
    if split is not None:
        paths = [p for p in paths if metas[p]["split"] == split]
        if not paths:
            found = sorted({m["split"] for m in metas.values()})
            raise DataError(f"no {split!r} shards among the {len(metas)} read; splits found: {', '.join(found)}")
    spec = metas[paths[0]]["feature_spec"]
    for p in paths[1:]:
        check_spec(metas[p]["feature_spec"], spec, f"{p}", f"{paths[0]}")
    if expect_spec is not None:
        check_spec(spec, normalize_spec(expect_spec), f"{paths[0]}", "the expected spec")
    fs = gather_shards([ShardRows(p) for p in paths])
    _warn_duplicate_ids(fs)
    splits = {metas[p]["split"] for p in paths}
    meta = {
        "format": SHARD_FORMAT,
        "version": SHARD_VERSION,
        "split": splits.pop() if len(splits) == 1 else None,
        "feature_spec": spec,
        "created_by": ", ".join(sorted({metas[p]["created_by"] for p in paths})),
        "n": len(fs),
        "shards": [str(p) for p in paths],
    }
    logger.info("read %d shard(s): %d samples", len(paths), len(fs))
    return fs, meta


@dataclass(frozen=True, eq=False)
class ShardRows:
    """Rows of one shard for `gather_shards`: the row indices `rows`, in that order, or every row (None)."""

    path: Path
    rows: np.ndarray | None = None


def gather_shards(pieces: Sequence[ShardRows]) -> FeatureSet | RepeatedRows:
    """The pieces' rows, in order: what `concat_featuresets` of the pieces would give (each modality padded to
    the longest T), written into arrays allocated once from the shards' `.npy` headers and filled one shard at a
    time. Memory: the result plus one shard, never all the pieces and a copy of them (a corpus with the voice
    encoder's columns is gigabytes). A piece that recurs (the same rows of the same shard: `shards:DIR*K`) is
    stored once and the result is a `RepeatedRows` over the distinct rows: four affect views x4 were 20,000 rows
    of ~260 kB in memory, held as 5,000."""
    if not pieces:
        raise DataError("nothing to gather: no shards given")
    first: dict[tuple[Path, bytes | None], int] = {}  # each distinct piece -> where it first comes
    keys = [(p.path, None if p.rows is None else np.asarray(p.rows, np.int64).tobytes()) for p in pieces]
    for i, key in enumerate(keys):
        first.setdefault(key, i)
    if len(first) == len(pieces):
        return _gather_distinct(pieces)
    base = _gather_distinct([pieces[i] for i in first.values()])
    counts = [_row_count(pieces[i]) for i in first.values()]
    starts = dict(zip(first, np.cumsum([0, *counts[:-1]]).tolist(), strict=True))
    sizes = dict(zip(first, counts, strict=True))
    rows = np.concatenate([np.arange(starts[k], starts[k] + sizes[k], dtype=np.int64) for k in keys])
    return RepeatedRows(base, rows)


def _row_count(piece: ShardRows) -> int:
    return feature_shapes(piece.path)[MODALITIES[0]][0] if piece.rows is None else len(piece.rows)


def _gather_distinct(pieces: Sequence[ShardRows]) -> FeatureSet:
    shapes = {path: feature_shapes(path) for path in dict.fromkeys(p.path for p in pieces)}  # once per shard
    dims = {m: shapes[pieces[0].path][m][2] for m in MODALITIES}
    for p in pieces:
        got = {m: shapes[p.path][m][2] for m in MODALITIES}
        if got != dims:
            raise DataError(f"{p.path} has dims {_fmt_dims(got)} but {pieces[0].path} has {_fmt_dims(dims)}: they "
                            "come from different feature extractors and cannot be read together")  # fmt: skip
    counts = [shapes[p.path][MODALITIES[0]][0] if p.rows is None else len(p.rows) for p in pieces]
    n = sum(counts)
    feats, masks = {}, {}
    for m in MODALITIES:
        t = max(shapes[p.path][m][1] for p in pieces)
        feats[m] = np.zeros((n, t, dims[m]), np.float32)
        masks[m] = np.zeros((n, t), np.bool_)
    labels = np.zeros(n, np.float32)
    ids = []
    start = 0
    for p, count in zip(pieces, counts, strict=True):
        fs, _ = read_shard(p.path)
        if p.rows is not None:
            fs = fs.subset(p.rows)
        if len(fs) != count or any(fs.seq_lens[m] != shapes[p.path][m][1] for m in MODALITIES):
            raise DataError(f"{p.path} changed while it was read: read it again once nothing writes it")
        end = start + count
        for m in MODALITIES:
            tm = fs.seq_lens[m]
            feats[m][start:end, :tm] = fs.feats[m]
            masks[m][start:end, :tm] = fs.masks[m]
        labels[start:end] = fs.labels
        ids.append(np.asarray(fs.ids).astype(str))
        start = end
    return FeatureSet(feats=feats, masks=masks, labels=labels, ids=np.concatenate(ids))


def concat_featuresets(sets: Sequence[FeatureSet]) -> FeatureSet:
    """Concatenate feature sets along N, padding each modality to the longest T with zeros and False masks.

    Padding is safe because a False mask already means "no data at this step" everywhere downstream."""
    if not sets:
        raise DataError("nothing to concatenate: no feature sets given")
    dims = sets[0].dims
    for i, fs in enumerate(sets):
        if fs.dims != dims:
            raise DataError(
                f"feature set {i} has dims {_fmt_dims(fs.dims)} but set 0 has {_fmt_dims(dims)}: they come from"
                " different feature extractors and cannot be concatenated"
            )
    n = sum(len(fs) for fs in sets)
    feats: dict[Modality, np.ndarray] = {}
    masks: dict[Modality, np.ndarray] = {}
    for m in MODALITIES:
        t = max(fs.seq_lens[m] for fs in sets)
        feats[m] = np.zeros((n, t, dims[m]), np.float32)
        masks[m] = np.zeros((n, t), np.bool_)
        start = 0
        for fs in sets:
            end, tm = start + len(fs), fs.seq_lens[m]
            feats[m][start:end, :tm] = fs.feats[m]
            masks[m][start:end, :tm] = fs.masks[m]
            start = end
    labels = np.concatenate([np.asarray(fs.labels, np.float32) for fs in sets])
    ids = np.concatenate([np.asarray(fs.ids).astype(str) for fs in sets])
    return FeatureSet(feats=feats, masks=masks, labels=labels, ids=ids)


def _shard_paths(paths_or_dir: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    if isinstance(paths_or_dir, (str, os.PathLike)):
        root = Path(paths_or_dir)
        if not root.is_dir():
            return [root]
        paths = sorted(root.glob("*.npz"))
        if not paths:
            raise DataError(f"no shards (*.npz) in {root}: extract features into it first")
        return paths
    paths = [Path(p) for p in paths_or_dir]
    if not paths:
        raise DataError("no shard paths given")
    return paths


def _warn_duplicate_ids(fs: FeatureSet) -> None:
    """Duplicate ids usually mean a shard was listed twice or two extractions overlap; warn rather than refuse."""
    dup = len(fs) - len(np.unique(fs.ids))
    if dup:
        logger.warning("%d duplicate sample ids across the shards read: is a shard listed twice?", dup)


def _fmt_dims(dims: Mapping[Modality, int]) -> str:
    return "{" + ", ".join(f"{m}: {dims[m]}" for m in MODALITIES) + "}"
