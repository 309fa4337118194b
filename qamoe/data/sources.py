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

import logging
from pathlib import Path
from typing import Any

import numpy as np

from qamoe.data.featureset import FeatureSet, RepeatedRows
from qamoe.data.gather import ShardRows, gather_shards
from qamoe.data.mmsa import DATASET_DIMS, load_mmsa_pickle
from qamoe.data.shards import read_shard_meta, shard_ids
from qamoe.data.synthetic import SyntheticConfig, make_benchmark
from qamoe.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
# additive splits of a corpus (docs/CORPUS.md): loaded when present. train_raw / test_raw hold "#raw" twins of
# train / test rows (the same sample through a raw-media corruption), test_asr "#asr" twins with ASR text.
EXTRA_SPLITS = ("train_raw", "test_raw", "test_asr")


def load_source(spec: str, *, training: bool = False, splits: tuple[str, ...] | None = None
                ) -> tuple[dict[str, FeatureSet | RepeatedRows], dict[str, Any]]:  # fmt: skip
    """-> ({"train", "valid", "test"} -> FeatureSet, info dict with the source and any feature spec). A train
    split with repeated folders (`DIR*K`) is a `RepeatedRows`: each distinct row held once.

    `training=True`: only what training reads, {"train", "valid"}, with the raw-media twins of a corpus's
    `train_raw` split placed after the train rows inside "train" (the order tools/train.py has always trained
    on: every folder's train rows with their repeats, then every folder's twins). Shards are read into arrays
    allocated once (`gather_shards`), so loading takes the result's memory plus one shard's.

    `splits` (shards only): read just these, each required (an evaluation of one split of a corpus built
    without the others, e.g. the affect views' train and valid)."""
    kind, _, rest = spec.partition(":")
    if kind == "synthetic":
        seed = int(rest) if rest else 0
        data = make_benchmark(SyntheticConfig(seed=seed))
        return _for_training(data) if training else data, {"source": spec, "feature_spec": {"synthetic": seed}}
    if kind == "mmsa":
        if not rest:
            raise ConfigError("mmsa needs a path: mmsa:/path/to/unaligned_50.pkl[:mosi|mosei|sims]")
        path, dataset = rest, None
        head, _, tail = rest.rpartition(":")
        if head and tail.lower() in DATASET_DIMS:
            path, dataset = head, tail.lower()
        data = load_mmsa_pickle(path, dataset)
        info = {"source": spec, "feature_spec": {"mmsa": dataset or "unchecked"}}
        return _for_training(data) if training else data, info
    if kind == "shards":
        folders = [_folder_and_repeat(p) for p in rest.split(",") if p]
        if not folders:
            raise ConfigError("shards needs a folder: shards:DIR[,DIR...]")
        specs = [_shard_spec(d) for d, _, _ in folders]
        if any(s != specs[0] for s in specs[1:]):
            raise DataError(f"{spec}: the folders hold features of different feature specs; rebuild them with one")
        plans = [_plan_folder(d, out, k, training, splits) for d, out, k in folders]
        order = list(dict.fromkeys(s for plan in plans for s in plan))
        joined = {split: [piece for plan in plans for piece in plan.get(split, [])] for split in order}
        if training and "train_raw" in joined:
            joined["train"] += joined.pop("train_raw")
        data = {split: gather_shards(pieces) for split, pieces in joined.items()}
        return data, {"source": spec, "feature_spec": specs[0]}
    raise ConfigError(f"unknown data source {spec!r}: use synthetic[:SEED], mmsa:PATH[:DATASET] or shards:DIR[,DIR]")


def _for_training(data: dict[str, FeatureSet]) -> dict[str, FeatureSet]:
    return {"train": data["train"], "valid": data["valid"]}


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


def _plan_folder(directory: Path, sources: tuple[str, ...], times: int, training: bool,
                 splits: tuple[str, ...] | None = None) -> dict[str, list[ShardRows]]:  # fmt: skip
    """Which rows of which shards of one folder make each split: every shard of the split in file-name order,
    without the rows of the left-out `sources` (ids "SRC/..."), the train split's shards `times` over."""
    if not directory.is_dir():
        raise DataError(f"shard directory {directory} not found: run tools/extract_features.py first")
    paths = sorted(directory.glob("*.npz"))
    metas = {p: read_shard_meta(p) for p in paths}
    for p in paths[1:]:
        if metas[p]["feature_spec"] != metas[paths[0]]["feature_spec"]:
            raise DataError(f"{p} has a different feature_spec from {paths[0]}: a folder holds one corpus; "
                            "re-extract the odd shards with the folder's spec")  # fmt: skip
    required = ("train", "valid") if training else SPLITS
    wanted = required + ("train_raw",) if training else SPLITS + EXTRA_SPLITS
    if splits is not None:
        required = wanted = tuple(splits)
    present = {m["split"] for m in metas.values()}
    for split in required:
        if split not in present:
            raise DataError(f"no {split!r} shards among the {len(metas)} read in {directory}; splits found: "
                            f"{', '.join(sorted(present)) or 'none'}")  # fmt: skip
    prefixes = tuple(f"{s}/" for s in sources)
    plan: dict[str, list[ShardRows]] = {}
    for split in [s for s in wanted if s in present]:
        pieces, ids = [], []
        for p in [p for p in paths if metas[p]["split"] == split]:
            shard = shard_ids(p)
            ids.append(shard)
            keep = np.flatnonzero([not str(i).startswith(prefixes) for i in shard]) if sources else None
            pieces.append(ShardRows(p, keep))
        every = np.concatenate(ids)
        if len(every) != len(np.unique(every)):
            logger.warning("%d duplicate sample ids in the %s shards of %s: is a shard there twice?",
                           len(every) - len(np.unique(every)), split, directory)  # fmt: skip
        if split == "train" and sources and not sum(len(p.rows) for p in pieces if p.rows is not None):
            raise DataError(f"{directory}: leaving out {', '.join(sources)} leaves no train rows")
        plan[split] = pieces * times if split == "train" else pieces
    return plan


def _shard_spec(directory: Path) -> dict[str, Any]:
    first = sorted(directory.glob("*.npz"))
    return dict(read_shard_meta(first[0])["feature_spec"]) if first else {}
