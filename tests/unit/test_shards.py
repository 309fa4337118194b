"""The versioned shard format: round trips, atomic writes, and every kind of bad file becomes a DataError."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qamoe.data.featureset import FeatureSet
from qamoe.data.gather import concat_featuresets, read_shards
from qamoe.data.shards import SHARD_FORMAT, SHARD_VERSION, read_shard, read_shard_meta, write_shard
from qamoe.errors import ConfigError, DataError
from qamoe.modality import MODALITIES, Modality

SPEC = {"text": {"model": "minilm", "dim": 4}, "audio": {"rate": 16000, "dim": 3}, "vision": {"dim": 2}}
DIMS = {Modality.TEXT: 4, Modality.AUDIO: 3, Modality.VISION: 2}


def _fs(n: int, t: dict[Modality, int] | None = None, seed: int = 0, prefix: str = "s") -> FeatureSet:
    rng = np.random.default_rng(seed)
    t = t or {Modality.TEXT: 5, Modality.AUDIO: 7, Modality.VISION: 3}
    feats, masks = {}, {}
    for m in MODALITIES:
        k = rng.random((n, t[m])) < 0.7
        feats[m] = (rng.normal(size=(n, t[m], DIMS[m])) * k[..., None]).astype(np.float32)
        masks[m] = k
    labels = rng.uniform(-3, 3, n).astype(np.float32)
    ids = np.array([f"{prefix}{i}" for i in range(n)])
    return FeatureSet(feats=feats, masks=masks, labels=labels, ids=ids)


def _assert_same(a: FeatureSet, b: FeatureSet) -> None:
    for m in MODALITIES:
        np.testing.assert_array_equal(a.feats[m], b.feats[m])
        np.testing.assert_array_equal(a.masks[m], b.masks[m])
        assert a.feats[m].dtype == np.float32 and a.masks[m].dtype == np.bool_
    np.testing.assert_array_equal(a.labels, b.labels)
    assert list(a.ids) == list(b.ids)


def _raw_members(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _rewrite(path: Path, members: dict[str, np.ndarray]) -> Path:
    with path.open("wb") as f:
        np.savez(f, **members)
    return path


def _with_meta(path: Path, **changes: object) -> Path:
    members = _raw_members(path)
    meta = json.loads(str(members["__meta__"][()]))
    meta.update(changes)
    members["__meta__"] = np.array(json.dumps(meta))
    return _rewrite(path, members)


def test_round_trip_is_exact_and_meta_is_complete(tmp_path: Path) -> None:
    fs = _fs(6)
    path = write_shard(tmp_path / "a.npz", fs, split="train", feature_spec=SPEC, created_by="extract 0.1")
    assert path == tmp_path / "a.npz"
    back, meta = read_shard(path, expect_spec=SPEC)
    _assert_same(back, fs)
    assert meta == {"format": SHARD_FORMAT, "version": SHARD_VERSION, "split": "train", "feature_spec": SPEC,
                    "created_by": "extract 0.1", "n": 6}
    assert read_shard_meta(path) == meta


def test_every_member_loads_without_pickle_and_matches_the_documented_schema(tmp_path: Path) -> None:
    fs = _fs(3)
    fs = FeatureSet(feats=fs.feats, masks=fs.masks, labels=fs.labels, ids=fs.ids.astype(object))  # object ids in
    members = _raw_members(write_shard(tmp_path / "a.npz", fs, split="valid", feature_spec=SPEC))
    assert all(a.dtype != object for a in members.values())
    assert members["__meta__"].shape == () and members["__meta__"].dtype.kind == "U"
    for m in MODALITIES:
        assert members[f"{m}_feats"].dtype == np.float32 and members[f"{m}_mask"].dtype == np.bool_
    assert members["label"].dtype == np.float32 and members["id"].dtype.kind == "U"


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "shards"
    write_shard(out / "a.npz", _fs(4), split="train", feature_spec=SPEC)
    assert sorted(p.name for p in out.iterdir()) == ["a.npz"]

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        write_shard(out / "a.npz", _fs(2, seed=1), split="train", feature_spec=SPEC)
    with pytest.raises(OSError, match="disk full"):
        write_shard(out / "b.npz", _fs(2, seed=1), split="train", feature_spec=SPEC)
    assert sorted(p.name for p in out.iterdir()) == ["a.npz"], "a failed write must leave no temp file or new shard"
    monkeypatch.undo()
    assert len(read_shard(out / "a.npz")[0]) == 4, "a failed overwrite must leave the old shard intact"


def test_spec_mismatch_names_the_differing_keys_and_the_fix(tmp_path: Path) -> None:
    path = write_shard(tmp_path / "a.npz", _fs(2), split="train", feature_spec=SPEC)
    other = {**SPEC, "audio": {"rate": 8000, "dim": 3}, "extra": 1}
    with pytest.raises(DataError, match=r"differing keys: audio, extra;.*re-extract the features.*matches") as e:
        read_shard(path, expect_spec=other)
    assert "text" not in str(e.value).split("differing keys:")[1].split(";")[0]


def test_spec_compares_after_a_json_round_trip(tmp_path: Path) -> None:
    spec = {"window_s": (1.0, 0.5)}
    path = write_shard(tmp_path / "a.npz", _fs(2), split="train", feature_spec=spec)
    read_shard(path, expect_spec=spec)  # a tuple written reads back as a list; still the same spec


@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_truncated_file_is_a_data_error(tmp_path: Path, keep: float) -> None:
    path = write_shard(tmp_path / "a.npz", _fs(8), split="train", feature_spec=SPEC)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(DataError, match="not a readable qamoe shard|truncated"):
        read_shard(path)


def test_corrupt_and_foreign_files_are_data_errors(tmp_path: Path) -> None:
    garbage = tmp_path / "g.npz"
    garbage.write_bytes(b"\x80\x04not a zip at all" * 10)
    with pytest.raises(DataError, match="not a readable qamoe shard"):
        read_shard(garbage)
    npy = tmp_path / "x.npz"
    with npy.open("wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(DataError, match="single .npy array"):
        read_shard(npy)
    plain = _rewrite(tmp_path / "p.npz", {"x": np.zeros(3)})
    with pytest.raises(DataError, match="no __meta__ member"):
        read_shard(plain)
    with pytest.raises(DataError, match="no shard at"):
        read_shard(tmp_path / "absent.npz")


def test_corrupted_bytes_inside_a_member_are_a_data_error(tmp_path: Path) -> None:
    path = write_shard(tmp_path / "a.npz", _fs(8), split="train", feature_spec=SPEC)
    data = bytearray(path.read_bytes())
    at = data.find(b"\x93NUMPY", data.find(b"text_feats")) + 200  # inside text_feats' float data
    data[at:at + 8] = b"\xff" * 8
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="not a readable qamoe shard"):
        read_shard(path)


def test_object_member_needs_pickle_and_is_refused(tmp_path: Path) -> None:
    path = write_shard(tmp_path / "a.npz", _fs(2), split="train", feature_spec=SPEC)
    members = _raw_members(path)
    members["id"] = np.array(["a", None], dtype=object)
    with pytest.raises(DataError, match="not a readable qamoe shard"):
        read_shard(_rewrite(path, members))


def test_newer_version_says_upgrade_and_wrong_format_is_refused(tmp_path: Path) -> None:
    path = write_shard(tmp_path / "a.npz", _fs(2), split="train", feature_spec=SPEC)
    with pytest.raises(DataError, match=r"version 2, newer.*upgrade qamoe-live"):
        read_shard(_with_meta(path, version=SHARD_VERSION + 1))
    with pytest.raises(DataError, match="not a qamoe shard"):
        read_shard(_with_meta(path, version=1, format="other"))


def test_missing_arrays_and_shape_inconsistencies_are_data_errors(tmp_path: Path) -> None:
    path = write_shard(tmp_path / "a.npz", _fs(3), split="train", feature_spec=SPEC)
    good = _raw_members(path)
    with pytest.raises(DataError, match=r"missing member\(s\) audio_mask"):
        read_shard(_rewrite(path, {k: v for k, v in good.items() if k != "audio_mask"}))
    with pytest.raises(DataError, match=r"vision_mask must be bool \[3, 3\], found bool \[3, 2\]"):
        read_shard(_rewrite(path, {**good, "vision_mask": good["vision_mask"][:, :2]}))
    with pytest.raises(DataError, match=r"label must be float32 \[3\], found float32 \[2\]"):
        read_shard(_rewrite(path, {**good, "label": good["label"][:2]}))
    with pytest.raises(DataError, match=r"text_feats must be float32"):
        read_shard(_rewrite(path, {**good, "text_feats": good["text_feats"].astype(np.float64)}))
    bad = good["audio_feats"].copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(DataError, match="audio_feats holds 1 NaN/Inf"):
        read_shard(_rewrite(path, {**good, "audio_feats": bad}))
    _rewrite(path, good)
    with pytest.raises(DataError, match="meta 'n' must be"):
        read_shard(_with_meta(path, n=-1))


def test_concat_pads_shorter_sequences_with_zeros_and_false(tmp_path: Path) -> None:
    a = _fs(2, {Modality.TEXT: 5, Modality.AUDIO: 7, Modality.VISION: 3}, seed=1, prefix="a")
    b = _fs(3, {Modality.TEXT: 8, Modality.AUDIO: 4, Modality.VISION: 3}, seed=2, prefix="b")
    c = concat_featuresets([a, b])
    assert len(c) == 5 and c.seq_lens == {Modality.TEXT: 8, Modality.AUDIO: 7, Modality.VISION: 3}
    text, audio = Modality.TEXT, Modality.AUDIO
    np.testing.assert_array_equal(c.feats[text][:2, :5], a.feats[text])
    assert not c.feats[text][:2, 5:].any() and not c.masks[text][:2, 5:].any()
    np.testing.assert_array_equal(c.feats[audio][2:, :4], b.feats[audio])
    assert not c.feats[audio][2:, 4:].any() and not c.masks[audio][2:, 4:].any()
    np.testing.assert_array_equal(c.masks[text][2:], b.masks[text])
    np.testing.assert_array_equal(c.labels, np.concatenate([a.labels, b.labels]))
    assert list(c.ids) == ["a0", "a1", "b0", "b1", "b2"]


def test_concat_refuses_different_dims_and_empty_input() -> None:
    a = _fs(2)
    wide = a.replace(feats={Modality.AUDIO: np.zeros((2, 7, 9), np.float32)})
    with pytest.raises(DataError, match="different feature extractors"):
        concat_featuresets([a, wide])
    with pytest.raises(DataError, match="nothing to concatenate"):
        concat_featuresets([])


def test_read_shards_from_a_directory_filters_split_and_pads(tmp_path: Path) -> None:
    a = _fs(2, {Modality.TEXT: 5, Modality.AUDIO: 7, Modality.VISION: 3}, seed=1, prefix="a")
    b = _fs(3, {Modality.TEXT: 8, Modality.AUDIO: 4, Modality.VISION: 3}, seed=2, prefix="b")
    write_shard(tmp_path / "000.npz", a, split="train", feature_spec=SPEC, created_by="x")
    write_shard(tmp_path / "001.npz", b, split="train", feature_spec=SPEC, created_by="y")
    write_shard(tmp_path / "002.npz", _fs(4, seed=3, prefix="v"), split="valid", feature_spec=SPEC)
    fs, meta = read_shards(tmp_path, split="train", expect_spec=SPEC)
    _assert_same(fs, concat_featuresets([a, b]))
    assert meta["split"] == "train" and meta["n"] == 5 and meta["created_by"] == "x, y"
    assert meta["shards"] == [str(tmp_path / "000.npz"), str(tmp_path / "001.npz")]
    all_fs, all_meta = read_shards(sorted(tmp_path.glob("*.npz")))
    assert len(all_fs) == 9 and all_meta["split"] is None
    with pytest.raises(DataError, match="no 'test' shards.*splits found: train, valid"):
        read_shards(tmp_path, split="test")


def test_read_shards_refuses_mixed_specs_and_empty_input(tmp_path: Path) -> None:
    write_shard(tmp_path / "a.npz", _fs(2), split="train", feature_spec=SPEC)
    write_shard(tmp_path / "b.npz", _fs(2), split="train", feature_spec={**SPEC, "vision": {"dim": 2, "fps": 5}})
    with pytest.raises(DataError, match=r"b\.npz has a different feature_spec from .*a\.npz \(differing keys: vision;"):
        read_shards(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no shards"):
        read_shards(empty)
    with pytest.raises(DataError, match="no shard paths"):
        read_shards([])


def test_writer_refuses_bad_arguments_and_non_finite_values(tmp_path: Path) -> None:
    fs = _fs(2)
    with pytest.raises(ConfigError, match="must end in .npz"):
        write_shard(tmp_path / "a.shard", fs, split="train", feature_spec=SPEC)
    with pytest.raises(ConfigError, match="non-empty string"):
        write_shard(tmp_path / "a.npz", fs, split="", feature_spec=SPEC)
    with pytest.raises(ConfigError, match="plain JSON"):
        write_shard(tmp_path / "a.npz", fs, split="train", feature_spec={"f": object()})
    bad = fs.replace(feats={Modality.VISION: np.full_like(fs.feats[Modality.VISION], np.inf)})
    with pytest.raises(DataError, match="vision features hold NaN/Inf"):
        write_shard(tmp_path / "a.npz", bad, split="train", feature_spec=SPEC)
    assert not list(tmp_path.iterdir())


def test_several_shard_folders_join_split_by_split_and_repeat_only_training(tmp_path: Path) -> None:
    from qamoe.data.sources import load_source

    for name, seed in (("a", 0), ("b", 1)):
        for split, n in (("train", 3), ("valid", 2), ("test", 1)):
            (tmp_path / name).mkdir(exist_ok=True)
            write_shard(tmp_path / name / f"{split}-00000.npz", _fs(n, seed=seed, prefix=f"{name}{split}"),
                        split=split, feature_spec=SPEC)  # fmt: skip
    data, info = load_source(f"shards:{tmp_path / 'a'},{tmp_path / 'b'}*2")
    assert [len(data[s]) for s in ("train", "valid", "test")] == [3 + 2 * 3, 2 + 2, 1 + 1]
    assert list(data["train"].ids).count("btrain0") == 2 and list(data["valid"].ids).count("bvalid0") == 1
    assert info["feature_spec"] == SPEC
    with pytest.raises(ConfigError, match="whole number"):
        load_source(f"shards:{tmp_path / 'a'}*x")
    (tmp_path / "c").mkdir()
    for split in ("train", "valid", "test"):
        write_shard(tmp_path / "c" / f"{split}-00000.npz", _fs(1, prefix="c"), split=split,
                    feature_spec={**SPEC, "vision": {"dim": 9}})  # fmt: skip
    with pytest.raises(DataError, match="different feature specs"):
        load_source(f"shards:{tmp_path / 'a'},{tmp_path / 'c'}")


def test_a_folder_can_leave_out_sources_by_id_prefix_in_every_split(tmp_path: Path) -> None:
    """shards:DIR!SRC drops the rows whose id starts "SRC/" (a licence-clean training: no RAVDESS rows)."""
    from qamoe.data.sources import load_source

    folder = tmp_path / "affect"
    folder.mkdir()
    for split, n in (("train", 4), ("valid", 2), ("test", 2)):
        parts = [_fs(n, seed=i, prefix=f"{src}/{split}") for i, src in enumerate(("ravdess", "emodb", "speech_va"))]
        write_shard(folder / f"{split}-00000.npz", concat_featuresets(parts), split=split, feature_spec=SPEC)
    data, _ = load_source(f"shards:{folder}!ravdess*2")
    assert [len(data[s]) for s in ("train", "valid", "test")] == [2 * 8, 4, 4]
    assert not any(str(i).startswith("ravdess/") for s in data for i in data[s].ids)
    data, _ = load_source(f"shards:{folder}!ravdess!speech_va")
    assert {str(i).split("/")[0] for i in data["train"].ids} == {"emodb"}
    with pytest.raises(ConfigError, match="no source named"):
        load_source(f"shards:{folder}!")
    with pytest.raises(DataError, match="leaves no train rows"):
        load_source(f"shards:{folder}!ravdess!emodb!speech_va")


def test_gather_equals_concatenating_the_chosen_rows_with_repeats_and_padding(tmp_path: Path) -> None:
    from qamoe.data.gather import ShardRows, gather_shards
    from qamoe.data.shards import shard_ids

    a = write_shard(tmp_path / "a.npz", _fs(5, seed=1, prefix="a"), split="train", feature_spec=SPEC)
    short = {Modality.TEXT: 2, Modality.AUDIO: 9, Modality.VISION: 1}
    b = write_shard(tmp_path / "b.npz", _fs(4, t=short, seed=2, prefix="b"), split="train", feature_spec=SPEC)
    rows = np.array([3, 0, 2])
    got = gather_shards([ShardRows(a), ShardRows(b, rows), ShardRows(a)])
    fa, fb = read_shard(a)[0], read_shard(b)[0]
    _assert_same(got, concat_featuresets([fa, fb.subset(rows), fa]))
    assert list(shard_ids(b)) == ["b0", "b1", "b2", "b3"]
    got = gather_shards([ShardRows(b, np.array([], np.int64)), ShardRows(a, np.array([1]))])
    _assert_same(got, concat_featuresets([fb.subset(np.array([], np.int64)), fa.subset(np.array([1]))]))
    with pytest.raises(DataError, match="nothing to gather"):
        gather_shards([])
    c = write_shard(tmp_path / "c.npz", concat_featuresets([_fs(2)]).replace(
        feats={Modality.VISION: np.zeros((2, 3, 5), np.float32)}), split="train", feature_spec=SPEC)  # fmt: skip
    with pytest.raises(DataError, match="different feature extractors"):
        gather_shards([ShardRows(a), ShardRows(c)])


def test_gather_holds_the_result_and_one_shard_never_a_second_copy(tmp_path: Path) -> None:
    """Reading a corpus (gigabytes with the voice encoder's columns) must not need twice its size."""
    import tracemalloc

    from qamoe.data.gather import ShardRows, gather_shards

    t = {Modality.TEXT: 8, Modality.AUDIO: 100, Modality.VISION: 10}
    paths = [write_shard(tmp_path / f"{i}.npz", _fs(400, t=t, seed=i, prefix=f"{i}-"), split="train",
                         feature_spec=SPEC) for i in range(8)]  # fmt: skip
    tracemalloc.start()
    fs = gather_shards([ShardRows(p) for p in paths])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    result = sum(fs.feats[m].nbytes + fs.masks[m].nbytes for m in MODALITIES) + fs.labels.nbytes + fs.ids.nbytes
    one_shard = result / len(paths)
    assert peak < result + 3 * one_shard, (peak, result, one_shard)


def test_training_loads_train_with_its_raw_twins_after_it_and_valid_only(tmp_path: Path) -> None:
    """load_source(training=True): every folder's train rows (with repeats), then every folder's train_raw twins,
    in one "train" (the order tools/train.py trains on); no test split is read or needed."""
    from qamoe.data.sources import load_source

    a, b = tmp_path / "a", tmp_path / "b"
    for folder, splits in ((a, ("train", "valid", "test", "train_raw")), (b, ("train", "valid"))):
        folder.mkdir()
        for split in splits:
            prefix = f"{folder.name}{split}" if split != "train_raw" else f"{folder.name}train"
            fs = _fs(3, seed=len(split), prefix=prefix)
            if split == "train_raw":
                fs = FeatureSet(fs.feats, fs.masks, fs.labels, np.array([f"{i}#raw" for i in fs.ids]))
            write_shard(folder / f"{split}-00000.npz", fs, split=split, feature_spec=SPEC)
    data, _ = load_source(f"shards:{a},{b}*2", training=True)
    assert set(data) == {"train", "valid"}
    assert list(data["train"].ids) == ["atrain0", "atrain1", "atrain2", *["btrain0", "btrain1", "btrain2"] * 2,
                                       "atrain0#raw", "atrain1#raw", "atrain2#raw"]  # fmt: skip
    full, _ = load_source(f"shards:{a},{b}*2".replace(f",{b}*2", ""))
    _assert_same(data["valid"].subset(np.arange(3)), full["valid"])
    with pytest.raises(DataError, match="no 'test' shards"):
        load_source(f"shards:{b}")  # evaluation still needs its test split
    # ... unless it names the one split it reads: that one alone is read (and required)
    one, _ = load_source(f"shards:{b}", splits=("valid",))
    assert set(one) == {"valid"} and list(one["valid"].ids) == ["bvalid0", "bvalid1", "bvalid2"]
    with pytest.raises(DataError, match="no 'test' shards.*splits found: train, valid"):
        load_source(f"shards:{b}", splits=("test",))


def test_feature_stats_in_chunks_equal_the_whole_array_computation() -> None:
    from qamoe.data.featureset import feature_stats

    fs = _fs(50, t={Modality.TEXT: 5, Modality.AUDIO: 7, Modality.VISION: 3}, seed=4)
    fs = fs.replace(feats={m: fs.feats[m] * 40 + 7 for m in MODALITIES})
    for chunk in (1, 7, 512):
        got = feature_stats(fs, chunk_rows=chunk)
        for m in MODALITIES:
            valid = fs.feats[m][fs.masks[m]]
            np.testing.assert_allclose(got[m][0], valid.mean(axis=0, dtype=np.float64), rtol=1e-6)
            np.testing.assert_allclose(got[m][1], valid.std(axis=0, dtype=np.float64), rtol=1e-5)


def test_the_balanced_view_of_a_train_and_valid_build_has_no_test_split_and_needs_train(tmp_path: Path) -> None:
    from qamoe.corpus.balance import write_balanced

    src = tmp_path / "corpus"
    src.mkdir()
    train = _fs(40, prefix="ravdess/a")
    write_shard(src / "train-00000.npz", train, split="train", feature_spec=SPEC)
    write_shard(src / "valid-00000.npz", _fs(6, seed=1, prefix="ravdess/v"), split="valid", feature_spec=SPEC)
    counts = write_balanced(src, tmp_path / "bal", created_by="test")  # a --splits train,valid build
    assert set(counts) == {"train", "valid"} and counts["valid"] == 6
    assert 0 < counts["train"] <= 40 and int((train.labels >= 0).sum()) <= counts["train"]
    assert sorted(p.name for p in (tmp_path / "bal").glob("*.npz")) == ["train-00000.npz", "valid-00000.npz"]
    bal, _ = read_shards(tmp_path / "bal", split="train")
    assert abs(float(bal.labels.mean())) < 0.5  # balanced towards a mean target of 0
    (src / "train-00000.npz").unlink()
    with pytest.raises(DataError, match="no train shards"):
        write_balanced(src, tmp_path / "bal2", created_by="test")


def test_repeated_pieces_are_held_once_and_read_as_the_repeated_rows(tmp_path: Path) -> None:
    """`shards:DIR*K` repeats a folder's train rows; memory holds each distinct row once (RepeatedRows), and
    every read the trainer makes (rows, labels, ids, input statistics) equals the materialised repeat's."""
    from qamoe.data.featureset import RepeatedRows, feature_stats
    from qamoe.data.gather import ShardRows, gather_shards

    a = write_shard(tmp_path / "a.npz", _fs(5, seed=1, prefix="a"), split="train", feature_spec=SPEC)
    short = {Modality.TEXT: 2, Modality.AUDIO: 9, Modality.VISION: 1}
    b = write_shard(tmp_path / "b.npz", _fs(4, t=short, seed=2, prefix="b"), split="train", feature_spec=SPEC)
    rows = np.array([3, 0, 2])
    pieces = [ShardRows(a), ShardRows(b, rows), ShardRows(a), ShardRows(b, rows.copy()), ShardRows(b)]
    got = gather_shards(pieces)
    fa, fb = read_shard(a)[0], read_shard(b)[0]
    want = concat_featuresets([fa, fb.subset(rows), fa, fb.subset(rows), fb])
    assert isinstance(got, RepeatedRows) and len(got.base) == 5 + 3 + 4 and len(got) == len(want) == 20
    _assert_same(got.subset(np.arange(len(got))), want)
    _assert_same(got, want)  # feats/masks copy the rows out
    pick = np.random.default_rng(0).permutation(len(got))[:7]
    _assert_same(got.subset(pick), want.subset(pick))
    np.testing.assert_array_equal(got.labels, want.labels)
    assert got.dims == want.dims and got.seq_lens == want.seq_lens
    for m, (mean, std) in feature_stats(got, chunk_rows=3).items():
        np.testing.assert_array_equal(mean, feature_stats(want, chunk_rows=3)[m][0])
        np.testing.assert_array_equal(std, feature_stats(want, chunk_rows=3)[m][1])
    assert not isinstance(gather_shards([ShardRows(a), ShardRows(b, rows)]), RepeatedRows)  # nothing repeated
