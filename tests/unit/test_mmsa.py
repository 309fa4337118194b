"""MMSA feature pickle loader: pickles are written in the toolkit's exact schema, small, under tmp_path."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np
import pytest

from qamoe.data.mmsa import DATASET_DIMS, load_mmsa_pickle
from qamoe.errors import ConfigError, DataError
from qamoe.modality import MODALITIES, Modality

MOSI = DATASET_DIMS["mosi"]
T_TEXT, T_AUDIO, T_VISION = 6, 9, 7


def _valid_lens(rng: np.random.Generator, n: int, t: int) -> np.ndarray:
    return rng.integers(1, t + 1, size=n)


def _padded(rng: np.random.Generator, lens: np.ndarray, t: int, d: int, pad_value: float = 0.0) -> np.ndarray:
    """Non-zero features for the first lens[i] steps, pad_value after."""
    x = np.full((len(lens), t, d), pad_value, np.float32)
    for i, n_valid in enumerate(lens):
        x[i, :n_valid] = rng.normal(size=(n_valid, d)) + 5.0  # + 5: never an all-zero vector by chance
    return x


def _token_ids(lens: np.ndarray, t: int) -> np.ndarray:
    ids = np.zeros((len(lens), 3, t), np.float64)  # the toolkit stores ids as floats
    for i, n_valid in enumerate(lens):
        ids[i, 0, :n_valid] = np.arange(101, 101 + n_valid)
        ids[i, 1, :n_valid] = 1
    return ids


def _split(rng: np.random.Generator, n: int, *, text_form: str, unaligned: bool) -> tuple[dict, dict]:
    """One split in the MMSA schema, and the masks a correct loader must produce."""
    lens = {Modality.TEXT: _valid_lens(rng, n, T_TEXT), Modality.AUDIO: _valid_lens(rng, n, T_AUDIO),
            Modality.VISION: _valid_lens(rng, n, T_VISION)}
    t = {Modality.TEXT: T_TEXT, Modality.AUDIO: T_AUDIO, Modality.VISION: T_VISION}
    expected = {m: np.arange(t[m])[None, :] < lens[m][:, None] for m in MODALITIES}
    # BERT leaves non-zero vectors at padded tokens: the mask must come from the attention row, not from zeros.
    bert = _padded(rng, lens[Modality.TEXT], T_TEXT, MOSI[Modality.TEXT], pad_value=0.5)
    split: dict = {
        "regression_labels": rng.uniform(-3, 3, size=n).astype(np.float32),
        "id": np.array([f"clip{i}$_$0" for i in range(n)], dtype=object),
    }
    if text_form == "features+ids":
        split["text"], split["text_bert"] = bert, _token_ids(lens[Modality.TEXT], T_TEXT)
    elif text_form == "bert_feats":  # a dump with features under text_bert and no attention mask
        split["text_bert"] = _padded(rng, lens[Modality.TEXT], T_TEXT, MOSI[Modality.TEXT])
    else:
        raise AssertionError(text_form)
    for m in (Modality.AUDIO, Modality.VISION):
        if unaligned:
            # lengths, not zeros, define validity: a zero vector inside the length is valid, padding may be junk
            split[m.value] = _padded(rng, lens[m], t[m], MOSI[m], pad_value=1.0)
            split[m.value][:, 0] = 0.0
            split[f"{m}_lengths"] = lens[m].tolist()
        else:
            split[m.value] = _padded(rng, lens[m], t[m], MOSI[m]).astype(np.float64)
    return split, expected


def _write(path: Path, data: object) -> Path:
    with path.open("wb") as f:
        pickle.dump(data, f)
    return path


def _dataset(rng: np.random.Generator, **kw: object) -> tuple[dict, dict]:
    data, expected = {}, {}
    for name, n in (("train", 5), ("valid", 3), ("test", 4)):
        data[name], expected[name] = _split(rng, n, **kw)
    return data, expected


@pytest.mark.parametrize("unaligned", [False, True], ids=["aligned", "unaligned"])
@pytest.mark.parametrize("text_form", ["features+ids", "bert_feats"])
def test_loads_every_split_with_correct_shapes_masks_and_labels(
    tmp_path: Path, text_form: str, unaligned: bool
) -> None:
    rng = np.random.default_rng(0)
    data, expected = _dataset(rng, text_form=text_form, unaligned=unaligned)
    sets = load_mmsa_pickle(_write(tmp_path / "x.pkl", data), dataset="mosi")

    assert set(sets) == {"train", "valid", "test"}
    for name, fs in sets.items():
        n = len(data[name]["regression_labels"])
        assert len(fs) == n
        assert fs.dims == MOSI
        assert fs.seq_lens == {Modality.TEXT: T_TEXT, Modality.AUDIO: T_AUDIO, Modality.VISION: T_VISION}
        for m in MODALITIES:
            assert fs.feats[m].dtype == np.float32
            np.testing.assert_array_equal(fs.masks[m], expected[name][m], err_msg=f"{name} {m}")
            assert not fs.feats[m][~fs.masks[m]].any(), "padding steps must hold zeros"
        assert fs.labels.dtype == np.float32
        np.testing.assert_array_equal(fs.labels, data[name]["regression_labels"])
        assert list(fs.ids) == list(data[name]["id"])
        assert fs.ids.dtype.kind == "U"


def test_text_features_are_kept_at_valid_steps(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    data, expected = _dataset(rng, text_form="features+ids", unaligned=False)
    fs = load_mmsa_pickle(_write(tmp_path / "x.pkl", data))["train"]
    k = expected["train"][Modality.TEXT]
    np.testing.assert_array_equal(fs.feats[Modality.TEXT][k], data["train"]["text"][k])


def test_nan_and_inf_features_become_zero_with_a_counted_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rng = np.random.default_rng(2)
    data, _ = _dataset(rng, text_form="features+ids", unaligned=True)
    audio = data["train"]["audio"]
    audio[0, 0, 0], audio[0, 0, 1], audio[1, 0, 2] = np.nan, -np.inf, np.inf
    with caplog.at_level(logging.WARNING, logger="qamoe.data.mmsa"):
        fs = load_mmsa_pickle(_write(tmp_path / "x.pkl", data))["train"]
    x = fs.feats[Modality.AUDIO]
    assert np.isfinite(x).all()
    assert x[0, 0, 0] == 0 and x[0, 0, 1] == 0 and x[1, 0, 2] == 0
    assert any("replaced 3 NaN/Inf" in r.getMessage() and "audio" in r.getMessage() for r in caplog.records)


def test_non_finite_label_raises(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    data, _ = _dataset(rng, text_form="features+ids", unaligned=False)
    data["valid"]["regression_labels"][1] = np.nan
    with pytest.raises(DataError, match=r"valid.*1 of 3 labels are NaN"):
        load_mmsa_pickle(_write(tmp_path / "x.pkl", data))


def test_wrong_dataset_dims_name_expected_and_found(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    data, _ = _dataset(rng, text_form="features+ids", unaligned=False)
    path = _write(tmp_path / "x.pkl", data)
    with pytest.raises(DataError, match=r"expected .*\[768, 74, 35\] for mosei, found \[768, 5, 20\].*mosi"):
        load_mmsa_pickle(path, dataset="mosei")
    with pytest.raises(ConfigError, match="unknown dataset 'iemocap'"):
        load_mmsa_pickle(path, dataset="iemocap")


def test_missing_split_names_it_and_what_was_found(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    data, _ = _dataset(rng, text_form="features+ids", unaligned=False)
    del data["test"]
    with pytest.raises(DataError, match=r"missing split\(s\) test; found top-level keys \['train', 'valid'\]"):
        load_mmsa_pickle(_write(tmp_path / "x.pkl", data))


def test_missing_key_names_it_the_split_and_what_was_found(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    data, _ = _dataset(rng, text_form="features+ids", unaligned=False)
    del data["valid"]["vision"]
    with pytest.raises(DataError, match=r"\[valid\]: missing key\(s\) vision; found keys \[.*'audio'.*'text'"):
        load_mmsa_pickle(_write(tmp_path / "x.pkl", data))


def test_token_ids_without_features_are_refused_with_the_fix(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    data, _ = _dataset(rng, text_form="features+ids", unaligned=False)
    for split in data.values():
        del split["text"]
    with pytest.raises(DataError, match="only BERT token ids"):
        load_mmsa_pickle(_write(tmp_path / "x.pkl", data))


def test_attention_mask_length_mismatch_is_an_error(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    data, _ = _dataset(rng, text_form="features+ids", unaligned=False)
    data["train"]["text_bert"] = data["train"]["text_bert"][:, :, :-1]
    with pytest.raises(DataError, match="attention mask"):
        load_mmsa_pickle(_write(tmp_path / "x.pkl", data))


def test_lengths_past_the_end_are_clipped_and_negative_ones_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    data, _ = _dataset(rng, text_form="features+ids", unaligned=True)
    data["train"]["audio_lengths"][0] = T_AUDIO + 10
    fs = load_mmsa_pickle(_write(tmp_path / "a.pkl", data))["train"]
    assert fs.masks[Modality.AUDIO][0].all()
    data["train"]["audio_lengths"][0] = -1
    with pytest.raises(DataError, match="audio_lengths.*non-negative"):
        load_mmsa_pickle(_write(tmp_path / "b.pkl", data))


def test_sample_count_mismatch_is_an_error(tmp_path: Path) -> None:
    rng = np.random.default_rng(10)
    data, _ = _dataset(rng, text_form="features+ids", unaligned=False)
    data["train"]["vision"] = data["train"]["vision"][:-1]
    with pytest.raises(DataError, match="vision holds 4 samples but there are 5 labels"):
        load_mmsa_pickle(_write(tmp_path / "x.pkl", data))


def test_bad_files_raise_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no MMSA feature pickle"):
        load_mmsa_pickle(tmp_path / "absent.pkl")
    with pytest.raises(DataError, match="holds a list, not a dict"):
        load_mmsa_pickle(_write(tmp_path / "list.pkl", [1, 2]))
    truncated = tmp_path / "cut.pkl"
    truncated.write_bytes(pickle.dumps({"train": np.zeros((100, 10))})[:200])
    with pytest.raises(DataError, match="not a readable MMSA pickle"):
        load_mmsa_pickle(truncated)
    rng = np.random.default_rng(11)
    data, _ = _dataset(rng, text_form="features+ids", unaligned=False)
    data["test"] = "oops"
    with pytest.raises(DataError, match=r"\[test\] is a str, not a dict"):
        load_mmsa_pickle(_write(tmp_path / "str.pkl", data))


def test_dataset_dims_table() -> None:
    dims = {name: [d[m] for m in MODALITIES] for name, d in DATASET_DIMS.items()}
    assert dims == {"mosi": [768, 5, 20], "mosei": [768, 74, 35], "sims": [768, 33, 709]}
