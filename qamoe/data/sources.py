"""Where training and evaluation data come from, named by one string on the command line:

  synthetic            the synthetic benchmark (qamoe.data.synthetic), default size and seed 0
  synthetic:SEED       ... with another sensor/data seed
  mmsa:PATH[:DATASET]  an MMSA feature pickle (aligned_50.pkl / unaligned_50.pkl; trusted files only);
                       DATASET (mosi, mosei, sims) checks the feature dims
  shards:DIR[,DIR...]  qamoe feature shards (.npz) as written by tools/extract_features.py, build_corpus.py
                       or build_affect_corpus.py; the split of each shard is read from its metadata; several
                       folders (one feature spec) are joined split by split; DIR*K repeats that folder's
                       training rows K times (oversampling a small corpus; valid and test are never repeated);
                       DIR!SRC[!SRC...] leaves out, in every split, the rows whose id starts "SRC/" (a source:
                       mosi, mosei, ravdess, emodb, speech_va, fer), e.g. runs/affect!ravdess*4 for a model
                       without the non-commercial RAVDESS
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from qamoe.data.featureset import FeatureSet
from qamoe.data.mmsa import DATASET_DIMS, load_mmsa_pickle
from qamoe.data.shards import concat_featuresets, read_shard_meta, read_shards
from qamoe.data.synthetic import SyntheticConfig, make_benchmark
from qamoe.errors import ConfigError, DataError

SPLITS = ("train", "valid", "test")
# additive splits of a corpus (docs/CORPUS.md): loaded when present. train_raw / test_raw hold "#raw" twins of
# train / test rows (the same sample through a raw-media corruption), test_asr "#asr" twins with ASR text.
EXTRA_SPLITS = ("train_raw", "test_raw", "test_asr")


def load_source(spec: str) -> tuple[dict[str, FeatureSet], dict[str, Any]]:
    """-> ({"train", "valid", "test"} -> FeatureSet, info dict with the source and any feature spec)."""
    kind, _, rest = spec.partition(":")
    if kind == "synthetic":
        seed = int(rest) if rest else 0
        return make_benchmark(SyntheticConfig(seed=seed)), {"source": spec, "feature_spec": {"synthetic": seed}}
    if kind == "mmsa":
        if not rest:
            raise ConfigError("mmsa needs a path: mmsa:/path/to/unaligned_50.pkl[:mosi|mosei|sims]")
        path, dataset = rest, None
        head, _, tail = rest.rpartition(":")
        if head and tail.lower() in DATASET_DIMS:
            path, dataset = head, tail.lower()
        return load_mmsa_pickle(path, dataset), {"source": spec, "feature_spec": {"mmsa": dataset or "unchecked"}}
    if kind == "shards":
        folders = [_folder_and_repeat(p) for p in rest.split(",") if p]
        if not folders:
            raise ConfigError("shards needs a folder: shards:DIR[,DIR...]")
        specs = [_shard_spec(d) for d, _, _ in folders]
        if any(s != specs[0] for s in specs[1:]):
            raise DataError(f"{spec}: the folders hold features of different feature specs; rebuild them with one")
        parts = [_repeat_train(_without(_load_shards(d), out, d), k) for d, out, k in folders]
        joined = {split: concat_featuresets([p[split] for p in parts if split in p])
                  for split in dict.fromkeys(s for p in parts for s in p)}  # fmt: skip
        return joined, {"source": spec, "feature_spec": specs[0]}
    raise ConfigError(f"unknown data source {spec!r}: use synthetic[:SEED], mmsa:PATH[:DATASET] or shards:DIR[,DIR]")


def _folder_and_repeat(item: str) -> tuple[Path, tuple[str, ...], int]:
    """"DIR" -> (DIR, (), 1); "DIR!A!B*K" -> (DIR, ("A", "B"), K)."""
    folder, star, times = item.rpartition("*")
    if not star:
        folder, times = item, "1"
    if not times.isdigit() or not 1 <= int(times) <= 100:
        raise ConfigError(f"shards:{item}: the repeat after * must be a whole number 1-100, e.g. runs/affect*4")
    folder, *left_out = folder.split("!")
    if any(not s or "/" in s for s in left_out):
        raise ConfigError(f"shards:{item}: no source named after '!': write DIR!ravdess to leave out ravdess/... rows")
    return Path(folder), tuple(left_out), int(times)


def _without(data: dict[str, FeatureSet], sources: tuple[str, ...], folder: Path) -> dict[str, FeatureSet]:
    """Every split of `data` without the rows whose id starts "SRC/" for a SRC in `sources`."""
    if not sources:
        return data
    prefixes = tuple(f"{s}/" for s in sources)
    out = {split: fs.subset(np.flatnonzero([not str(i).startswith(prefixes) for i in fs.ids]))
           for split, fs in data.items()}  # fmt: skip
    if not len(out["train"]):
        raise DataError(f"{folder}: leaving out {', '.join(sources)} leaves no train rows")
    return out


def _repeat_train(data: dict[str, FeatureSet], times: int) -> dict[str, FeatureSet]:
    if times == 1:
        return data
    return {**data, "train": concat_featuresets([data["train"]] * times)}


def _load_shards(directory: Path) -> dict[str, FeatureSet]:
    if not directory.is_dir():
        raise DataError(f"shard directory {directory} not found: run tools/extract_features.py first")
    out = {}
    for split in SPLITS:
        fs, _ = read_shards(directory, split=split)
        out[split] = fs
    present = {read_shard_meta(p)["split"] for p in directory.glob("*.npz")}
    for split in EXTRA_SPLITS:
        if split in present:
            out[split], _ = read_shards(directory, split=split)
    return out


def _shard_spec(directory: Path) -> dict[str, Any]:
    first = sorted(directory.glob("*.npz"))
    return dict(read_shard_meta(first[0])["feature_spec"]) if first else {}
