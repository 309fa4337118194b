"""The versioned feature shard: how features from the live extractors are stored for training.

This docstring is the contract between the extraction tool (the writer) and the trainer (the reader).

A shard is one uncompressed `.npz` file (a zip of `.npy` members, as `np.savez` writes it) holding N samples of one
split. It never holds pickled objects: every member loads with `np.load(path, allow_pickle=False)`, so reading a
shard cannot run code (unlike the MMSA pickles).

Members of format "qamoe-shard", version 1:

    __meta__       0-d unicode array holding one JSON object:
                     "format"        "qamoe-shard"
                     "version"       1 (an integer; a reader refuses versions newer than it supports)
                     "split"         "train", "valid", "test" or another non-empty name
                     "feature_spec"  a JSON object describing how the features were extracted (extractors, dims,
                                     rates, windows ...); opaque here and compared for equality, so a model is
                                     never trained or run on features it was not built for
                     "created_by"    free text naming the producing tool (and its version)
                     "n"             the number of samples N
    text_feats     float32 [N, T_text, D_text]        text_mask     bool [N, T_text]
    audio_feats    float32 [N, T_audio, D_audio]      audio_mask    bool [N, T_audio]
    vision_feats   float32 [N, T_vision, D_vision]    vision_mask   bool [N, T_vision]
    label          float32 [N]    sentiment in [-3, 3]
    id             unicode [N]    sample ids

Rules: dtypes are exactly those above; every feature and label is finite; mask True marks a valid step and padding
steps (mask False) hold zeros; an absent modality is an all-False mask, never a missing member. Within version 1,
changes are additive only: readers ignore members and meta keys they do not know. Anything else bumps the version.

Writes are atomic: the file is written to a temporary `.<name>.<random>.tmp` in the target directory, synced, then
renamed over the target with `os.replace`, so a reader never sees a half-written shard. `read_shards` (qamoe.data.gather)
concatenates shards in file-name order; their sequence lengths T may differ, and shorter ones are padded to the longest with
zeros (features) and False (masks), which the masks already mean as "no data here".
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import struct
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from qamoe.data.featureset import FeatureSet
from qamoe.errors import ConfigError, DataError
from qamoe.modality import MODALITIES, Modality

logger = logging.getLogger(__name__)

SHARD_FORMAT = "qamoe-shard"
SHARD_VERSION = 1

_META = "__meta__"
_META_KEYS = ("format", "version", "split", "feature_spec", "created_by", "n")
_ARRAYS = tuple(f"{m}_{part}" for m in MODALITIES for part in ("feats", "mask")) + ("label", "id")
# What a truncated or corrupt zip/npy raises from inside numpy and zipfile; each becomes one DataError.
_READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, struct.error, NotImplementedError)
_MISSING = object()


def write_shard(
    path: str | os.PathLike[str],
    fs: FeatureSet,
    *,
    split: str,
    feature_spec: Mapping[str, Any],
    created_by: str = "qamoe",
) -> Path:
    """Write `fs` as one shard at `path` (which must end in .npz) atomically; return the path.

    Refuses non-finite features or labels: a shard is training input, and NaN there would only surface as a NaN
    loss hours later."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ConfigError(f"shard path {path} must end in .npz: read_shards looks for *.npz files")
    if not isinstance(split, str) or not split:
        raise ConfigError(f"split must be a non-empty string such as 'train', got {split!r}")
    if not isinstance(created_by, str):
        raise ConfigError(f"created_by must be a string, got {type(created_by).__name__}")
    meta = {
        "format": SHARD_FORMAT,
        "version": SHARD_VERSION,
        "split": split,
        "feature_spec": normalize_spec(feature_spec),
        "created_by": created_by,
        "n": len(fs),
    }
    arrays = _shard_arrays(fs)
    arrays[_META] = np.array(json.dumps(meta, sort_keys=True, allow_nan=False))
    _atomic_savez(path, arrays)
    logger.info("wrote shard %s: %d %s samples", path, len(fs), split)
    return path


def read_shard_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The validated `__meta__` of one shard, without reading its arrays (to filter by split or check a spec)."""
    path = Path(path)
    with _open_npz(path) as z, _reading(path):
        return _parse_meta(z, path)


def read_shard(
    path: str | os.PathLike[str], *, expect_spec: Mapping[str, Any] | None = None
) -> tuple[FeatureSet, dict[str, Any]]:
    """Read one shard: (the feature set, its meta). Any defect is a DataError naming the file and the fix.

    With `expect_spec`, the shard's feature_spec must equal it (after a JSON round trip, so tuples equal lists)."""
    path = Path(path)
    want = None if expect_spec is None else normalize_spec(expect_spec)  # a bad argument is not a bad file
    with _open_npz(path) as z, _reading(path):
        meta = _parse_meta(z, path)
        if want is not None:
            check_spec(meta["feature_spec"], want, f"{path}", "the expected spec")
        missing = [name for name in _ARRAYS if name not in z.files]
        if missing:
            raise DataError(f"{path}: missing member(s) {', '.join(missing)}; found {sorted(z.files)}")
        arrays = {name: z[name] for name in _ARRAYS}
    return _to_featureset(arrays, meta["n"], path), meta


def shard_ids(path: str | os.PathLike[str]) -> np.ndarray:
    """A shard's sample ids, without reading its feature arrays (to choose rows before reading them)."""
    path = Path(path)
    with _open_npz(path) as z, _reading(path):
        if "id" not in z.files:
            raise DataError(f"{path}: missing member id; found {sorted(z.files)}")
        ids = z["id"]
    if ids.dtype.kind != "U" or ids.ndim != 1:
        raise DataError(f"{path}: id must be unicode [N], found {ids.dtype} {list(ids.shape)}")
    return ids


def feature_shapes(path: Path) -> dict[Modality, tuple[int, int, int]]:
    """(N, T, D) of each modality's features, from the `.npy` headers inside the shard (no array is read)."""
    if not path.is_file():
        raise DataError(f"no shard at {path}: check the path, or extract features into it first")
    out = {}
    with _reading(path), zipfile.ZipFile(path) as zf:
        for m in MODALITIES:
            name = f"{m}_feats.npy"
            if name not in zf.namelist():
                raise DataError(f"{path}: missing member {m}_feats; is it a qamoe shard?")
            with zf.open(name) as f:
                version = np.lib.format.read_magic(f)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, _, _ = read(f)
            if len(shape) != 3:
                raise DataError(f"{path}: {m}_feats must be float32 [N, T, D], found shape {list(shape)}")
            out[m] = (int(shape[0]), int(shape[1]), int(shape[2]))
    return out


def normalize_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The spec as it will read back from JSON, so written and expected specs compare equal (tuples -> lists)."""
    if not isinstance(spec, Mapping):
        raise ConfigError(f"feature_spec must be a dict, got {type(spec).__name__}")
    try:
        return json.loads(json.dumps(dict(spec), sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise ConfigError(
            f"feature_spec must be plain JSON (str keys; numbers, strings, lists, dicts; no NaN): {e}"
        ) from e


def _shard_arrays(fs: FeatureSet) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    for m in MODALITIES:
        x = np.ascontiguousarray(fs.feats[m], dtype=np.float32)
        if not np.isfinite(x).all():
            raise DataError(f"{m} features hold NaN/Inf: replace them (and mask those steps) before writing a shard")
        arrays[f"{m}_feats"] = x
        arrays[f"{m}_mask"] = np.ascontiguousarray(fs.masks[m], dtype=np.bool_)
    labels = np.asarray(fs.labels, dtype=np.float32)
    if not np.isfinite(labels).all():
        raise DataError("labels hold NaN/Inf: a shard's labels must all be finite")
    arrays["label"] = labels
    arrays["id"] = np.asarray(fs.ids).astype(str)  # unicode, never object: readable without pickle
    return arrays


def _atomic_savez(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write beside the target and rename over it, so a crash mid-write never leaves a half-written shard."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    # os.open with 0o666 (not mkstemp's 0o600) so the shard gets the usual umask-derived permissions.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Turn numpy/zipfile failures on a damaged file into one DataError that says what to do."""
    try:
        yield
    except _READ_ERRORS as e:
        raise DataError(
            f"{path} is not a readable qamoe shard ({type(e).__name__}: {e}): it is truncated, corrupt or not a"
            " shard; re-extract it"
        ) from e


@contextlib.contextmanager
def _open_npz(path: Path) -> Iterator[Any]:
    if not path.is_file():
        raise DataError(f"no shard at {path}: check the path, or extract features into it first")
    with _reading(path):
        z = np.load(path, allow_pickle=False)
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise DataError(f"{path} is a single .npy array, not a qamoe shard (an .npz with a {_META} member)")
    with z:
        yield z


def _parse_meta(z: Any, path: Path) -> dict[str, Any]:
    if _META not in z.files:
        raise DataError(f"{path} is an .npz but not a qamoe shard: no {_META} member (found {sorted(z.files)})")
    raw = z[_META]
    if raw.ndim != 0 or raw.dtype.kind != "U":
        raise DataError(f"{path}: {_META} must be a 0-d unicode array of JSON, found {raw.dtype} {raw.shape}")
    try:
        meta = json.loads(str(raw[()]))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: {_META} is not valid JSON ({e})") from e
    if not isinstance(meta, dict) or meta.get("format") != SHARD_FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise DataError(f"{path}: format {found!r}, expected {SHARD_FORMAT!r}: this is not a qamoe shard")
    version = meta.get("version")
    if not _is_int(version) or version < 1:
        raise DataError(f"{path}: shard version must be a positive integer, found {version!r}")
    if version > SHARD_VERSION:
        raise DataError(
            f"{path} is shard format version {version}, newer than this qamoe-live reads ({SHARD_VERSION}):"
            " upgrade qamoe-live"
        )
    _validate_meta(meta, path)
    return meta


def _validate_meta(meta: dict[str, Any], path: Path) -> None:
    missing = [k for k in _META_KEYS if k not in meta]
    if missing:
        raise DataError(f"{path}: {_META} lacks {', '.join(missing)}; found {sorted(meta)}")
    if not isinstance(meta["split"], str) or not meta["split"]:
        raise DataError(f"{path}: meta 'split' must be a non-empty string, found {meta['split']!r}")
    if not isinstance(meta["feature_spec"], dict):
        kind = type(meta["feature_spec"]).__name__
        raise DataError(f"{path}: meta 'feature_spec' must be a JSON object, found {kind}")
    if not isinstance(meta["created_by"], str):
        raise DataError(f"{path}: meta 'created_by' must be a string, found {meta['created_by']!r}")
    if not _is_int(meta["n"]) or meta["n"] < 0:
        raise DataError(f"{path}: meta 'n' must be a non-negative integer, found {meta['n']!r}")


def _to_featureset(arrays: Mapping[str, np.ndarray], n: int, path: Path) -> FeatureSet:
    """Check every array against the contract (dtype, shape, N, finiteness) before building the set."""
    _check_array(arrays["label"], "label", "float32", (n,), path)
    _check_array(arrays["id"], "id", "unicode", (n,), path)
    for m in MODALITIES:
        x = arrays[f"{m}_feats"]
        _check_array(x, f"{m}_feats", "float32", (n, None, None), path)
        _check_array(arrays[f"{m}_mask"], f"{m}_mask", "bool", (n, x.shape[1]), path)
    for name in [f"{m}_feats" for m in MODALITIES] + ["label"]:
        bad = int(np.count_nonzero(~np.isfinite(arrays[name])))
        if bad:
            raise DataError(f"{path}: {name} holds {bad} NaN/Inf values; the extractor must write finite values")
    return FeatureSet(
        feats={m: arrays[f"{m}_feats"] for m in MODALITIES},
        masks={m: arrays[f"{m}_mask"] for m in MODALITIES},
        labels=arrays["label"],
        ids=arrays["id"],
    )


def _check_array(arr: np.ndarray, name: str, dtype: str, shape: tuple[int | None, ...], path: Path) -> None:
    """`shape` uses None for a free dimension; dtype "unicode" means any width of numpy unicode string."""
    dtype_ok = arr.dtype.kind == "U" if dtype == "unicode" else arr.dtype == np.dtype(dtype)
    shape_ok = arr.ndim == len(shape) and all(w is None or a == w for a, w in zip(arr.shape, shape, strict=True))
    if not (dtype_ok and shape_ok):
        want = "[" + ", ".join("*" if w is None else str(w) for w in shape) + "]"
        raise DataError(f"{path}: {name} must be {dtype} {want}, found {arr.dtype} {list(arr.shape)}")


def check_spec(found: Mapping[str, Any], want: Mapping[str, Any], what: str, against: str) -> None:
    if found == want:
        return
    keys = sorted(k for k in set(found) | set(want) if found.get(k, _MISSING) != want.get(k, _MISSING))
    details = "; ".join(
        f"{k}: {_short(found.get(k, _MISSING))} vs {_short(want.get(k, _MISSING))}" for k in keys
    )
    raise DataError(
        f"{what} has a different feature_spec from {against} (differing keys: {', '.join(keys)}; {details}):"
        " re-extract the features with the current spec, or use the model that matches these features"
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _short(value: object, limit: int = 60) -> str:
    text = "(absent)" if value is _MISSING else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
