"""Load the MMSA toolkit's feature pickles (`aligned_50.pkl`, `unaligned_50.pkl`) into `FeatureSet`s.

These pickles are how MOSI, MOSEI and CH-SIMS are distributed for the benchmark tables; a research checkpoint is
trained on them (a live checkpoint is trained on shards from the live extractors, see `qamoe.data.shards`).

SECURITY: a pickle can run arbitrary code when it is loaded. Load only files you trust: ones you downloaded from the
dataset authors' own release or produced yourself. This is why the project's own interchange format is a plain
`.npz` read without pickle, and why nothing else in the project reads pickles.

Schema, per split (`train`, `valid`, `test`):
    text               BERT features [N, T, 768] float
    text_bert          the toolkit's BERT token ids [N, 3, T] (rows: input ids, attention mask, segment ids); some
                       dumps store BERT features [N, T, 768] under this name instead, and both forms are accepted
    audio, vision      [N, T_a, D_a], [N, T_v, D_v] float
    audio_lengths, vision_lengths   [N] valid steps per sample (unaligned pickles only)
    regression_labels  [N] sentiment in [-3, 3]
    id                 [N] clip ids (strings)

Masks: text from the attention-mask row of the token ids when present, else the steps whose feature vector is not
all zero; audio and vision from `*_lengths` when present (the first L steps are valid), else the non-zero steps
(aligned pickles pad with zeros). Padding steps are then zeroed, as `FeatureSet` requires: BERT leaves non-zero
vectors at padded token positions, and the model must not see them.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from qamoe.config import DATASET_INPUT_DIMS
from qamoe.data.featureset import FeatureSet
from qamoe.errors import ConfigError, DataError
from qamoe.modality import MODALITIES, Modality

logger = logging.getLogger(__name__)

# One source of truth for the benchmark dims (qamoe.config), re-exported under the loader's name.
DATASET_DIMS = DATASET_INPUT_DIMS

SPLITS: tuple[str, ...] = ("train", "valid", "test")

_DATASET_ALIASES = {"ch-sims": "sims", "chsims": "sims", "ch_sims": "sims", "cmu-mosi": "mosi", "cmu-mosei": "mosei"}
_TEXT_KEYS = ("text", "text_bert")
_BERT_DIM = 768
# Unpickling a damaged or foreign file fails in many ways (a truncated stream, a class from a missing module ...);
# each becomes one DataError that names the file, with the original chained.
_UNPICKLE_ERRORS = (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, KeyError,
                    TypeError, ValueError)


def load_mmsa_pickle(path: str | os.PathLike[str], dataset: str | None = None) -> dict[str, FeatureSet]:
    """Load an MMSA feature pickle as {"train", "valid", "test"} -> `FeatureSet`.

    SECURITY: the file is unpickled, and a pickle can run arbitrary code: pass only files you trust.

    `dataset` ("mosi", "mosei", "sims") checks the feature dims against `DATASET_DIMS`, so a MOSEI checkpoint is
    never silently trained or evaluated on MOSI features. NaN/Inf feature values (MMSA's MOSEI audio has -inf) are
    replaced with 0 and logged; non-finite labels raise, because no replacement for a label would be honest.
    """
    path = Path(path)
    expected = _expected_dims(dataset)
    data = _read_pickle(path)
    missing = [s for s in SPLITS if s not in data]
    if missing:
        raise DataError(
            f"{path}: missing split(s) {', '.join(missing)}; found top-level keys {_key_list(data)}"
            " (an MMSA feature pickle holds 'train', 'valid' and 'test')"
        )
    text_dim = expected[Modality.TEXT] if expected else _BERT_DIM
    sets = {s: _load_split(data[s], f"{path} [{s}]", text_dim) for s in SPLITS}
    _check_dims(sets, expected, dataset, path)
    for s, fs in sets.items():
        logger.info("%s [%s]: %d samples, seq lens %s, dims %s", path, s, len(fs), _fmt(fs.seq_lens), _fmt(fs.dims))
    return sets


def _expected_dims(dataset: str | None) -> dict[Modality, int] | None:
    if dataset is None:
        return None
    key = dataset.strip().lower()
    key = _DATASET_ALIASES.get(key, key)
    if key not in DATASET_DIMS:
        valid = ", ".join(DATASET_DIMS)
        raise ConfigError(f"unknown dataset {dataset!r}: use one of {valid}, or None to skip the dims check")
    return DATASET_DIMS[key]


def _read_pickle(path: Path) -> Mapping[str, object]:
    if not path.is_file():
        raise DataError(
            f"no MMSA feature pickle at {path}: pass the path of aligned_50.pkl or unaligned_50.pkl from the MMSA"
            " dataset release"
        )
    try:
        with path.open("rb") as f:
            data = pickle.load(f)
    except _UNPICKLE_ERRORS as e:
        raise DataError(f"{path} is not a readable MMSA pickle ({type(e).__name__}: {e}); is it truncated?") from e
    if not isinstance(data, Mapping):
        raise DataError(f"{path} holds a {type(data).__name__}, not a dict of splits 'train', 'valid', 'test'")
    return data


def _load_split(split: object, where: str, text_dim: int) -> FeatureSet:
    """One split's dict -> FeatureSet, every check naming the split and key so a bad file is easy to locate."""
    if not isinstance(split, Mapping):
        raise DataError(f"{where} is a {type(split).__name__}, not a dict of arrays")
    missing = [k for k in ("audio", "vision", "regression_labels", "id") if k not in split]
    if missing:
        raise DataError(f"{where}: missing key(s) {', '.join(missing)}; found keys {_key_list(split)}")
    labels = _labels(split["regression_labels"], f"{where} 'regression_labels'")
    n = len(labels)
    ids = _ids(split["id"], n, f"{where} 'id'")
    feats: dict[Modality, np.ndarray] = {}
    masks: dict[Modality, np.ndarray] = {}
    feats[Modality.TEXT], masks[Modality.TEXT] = _text(split, where, text_dim)
    for m in (Modality.AUDIO, Modality.VISION):
        feats[m] = _features(split[m.value], f"{where} '{m}'")
        masks[m] = _seq_mask(feats[m], split.get(f"{m}_lengths"), f"{where} '{m}_lengths'")
    for m in MODALITIES:
        if feats[m].shape[0] != n:
            raise DataError(f"{where}: {m} holds {feats[m].shape[0]} samples but there are {n} labels")
        feats[m] = _zero_padding(feats[m], masks[m])
    return FeatureSet(feats=feats, masks=masks, labels=labels, ids=ids)


def _labels(raw: object, where: str) -> np.ndarray:
    try:
        y = np.asarray(raw, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise DataError(f"{where} is not numeric: {e}") from e
    if y.ndim == 2 and y.shape[1] == 1:  # some dumps store [N, 1]
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{where} must be [N], found shape {y.shape}")
    bad = int(np.count_nonzero(~np.isfinite(y)))
    if bad:
        raise DataError(f"{where}: {bad} of {len(y)} labels are NaN or infinite; the file is damaged")
    return y


def _ids(raw: object, n: int, where: str) -> np.ndarray:
    ids = np.asarray(raw)
    if ids.ndim != 1 or len(ids) != n:
        raise DataError(f"{where} must be [N={n}], found shape {ids.shape}")
    return ids.astype(str)


def _features(raw: object, where: str) -> np.ndarray:
    """Float32 [N, T, D] with NaN/Inf replaced by 0 (logged with the count: a silent fix would hide a bad file)."""
    try:
        x = np.asarray(raw, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise DataError(f"{where} is not a numeric array: {e}") from e
    if x.ndim != 3:
        raise DataError(f"{where} must be [N, T, D], found shape {x.shape}")
    bad = ~np.isfinite(x)
    count = int(np.count_nonzero(bad))
    if count:
        logger.warning("%s: replaced %d NaN/Inf feature values with 0", where, count)
        x = np.where(bad, np.float32(0), x)
    return x


def _text(split: Mapping[str, object], where: str, text_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Text features and mask from `text` and/or `text_bert`, whichever forms they hold."""
    present = [k for k in _TEXT_KEYS if k in split]
    if not present:
        raise DataError(f"{where}: missing key 'text' (or 'text_bert'); found keys {_key_list(split)}")
    feats: np.ndarray | None = None
    attention: np.ndarray | None = None
    for key in present:
        arr = np.asarray(split[key])
        if _is_token_ids(arr):
            attention = arr[:, 1] != 0 if attention is None else attention
        elif arr.ndim == 3 and (key == "text" or arr.shape[-1] == text_dim):
            # `text_bert` is read as features only when its shape says so unmistakably; `text` is features by name
            # (a wrong dim is reported by the dims check, which names the dataset).
            feats = _features(arr, f"{where} '{key}'") if feats is None else feats
        else:
            raise DataError(
                f"{where} '{key}' has shape {arr.shape} ({arr.dtype}): neither BERT features [N, T, {text_dim}]"
                " nor token ids [N, 3, T] (input ids, attention mask, segment ids)"
            )
    if feats is None:
        raise DataError(
            f"{where}: text holds only BERT token ids, and the model consumes features: use the MMSA feature"
            f" pickle whose 'text' holds BERT features [N, T, {text_dim}]"
        )
    if attention is None:
        return feats, _nonzero_steps(feats)
    if attention.shape != feats.shape[:2]:
        raise DataError(
            f"{where}: the attention mask in 'text_bert' is [N, T] = {attention.shape} but the text features are"
            f" {feats.shape[:2]}; the two keys come from different dumps"
        )
    return feats, attention


def _is_token_ids(arr: np.ndarray) -> bool:
    """The toolkit's [N, 3, T] id form: integer-valued, with a 0/1 attention row."""
    if arr.ndim != 3 or arr.shape[1] != 3 or arr.dtype.kind not in "biuf":
        return False
    if arr.dtype.kind == "f" and not (np.isfinite(arr).all() and np.array_equal(arr, np.round(arr))):
        return False
    return bool(np.isin(arr[:, 1], (0, 1)).all())


def _nonzero_steps(x: np.ndarray) -> np.ndarray:
    return np.any(x != 0, axis=-1)


def _seq_mask(x: np.ndarray, lengths: object, where: str) -> np.ndarray:
    """Valid steps from per-sample lengths (the first L are valid) or, without lengths, the non-zero steps."""
    if lengths is None:
        return _nonzero_steps(x)
    n, t = x.shape[:2]
    try:
        lens = np.asarray(lengths, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise DataError(f"{where} is not numeric: {e}") from e
    if lens.shape != (n,):
        raise DataError(f"{where} must be [N={n}], found shape {lens.shape}")
    if not np.isfinite(lens).all() or not np.array_equal(lens, np.round(lens)) or (lens < 0).any():
        raise DataError(f"{where} must hold non-negative whole numbers of steps")
    over = int(np.count_nonzero(lens > t))
    if over:
        # A length past the array's end can only mean "all steps valid"; clip rather than refuse the file.
        logger.warning("%s: %d lengths exceed the %d stored steps; clipped to %d", where, over, t, t)
    return np.arange(t)[None, :] < np.minimum(lens, t).astype(np.int64)[:, None]


def _zero_padding(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    pad = ~mask
    if pad.any():
        x = x if x.flags.writeable else x.copy()
        x[pad] = 0
    return x


def _check_dims(
    sets: Mapping[str, FeatureSet], expected: Mapping[Modality, int] | None, dataset: str | None, path: Path
) -> None:
    """Every split must share one set of dims, and match the named dataset's when one is given."""
    found = {s: fs.dims for s, fs in sets.items()}
    first = found[SPLITS[0]]
    for s, dims in found.items():
        if dims != first:
            raise DataError(f"{path}: split {s} has dims {_fmt(dims)} but {SPLITS[0]} has {_fmt(first)}")
    if expected is None or first == dict(expected):
        return
    matches = [name for name, d in DATASET_DIMS.items() if d == first]
    hint = f" (these are {matches[0]}'s dims: is this the {matches[0]} pickle?)" if matches else ""
    raise DataError(
        f"{path}: expected [text, audio, vision] dims {_fmt(expected)} for {dataset}, found {_fmt(first)}{hint}"
    )


def _fmt(values: Mapping[Modality, int]) -> str:
    return "[" + ", ".join(str(values[m]) for m in MODALITIES) + "]"


def _key_list(d: Mapping[object, object]) -> str:
    return "[" + ", ".join(sorted(repr(k) for k in d)) + "]" if d else "none"
