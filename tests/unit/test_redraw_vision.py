"""tools/redraw_vision.py / qamoe.corpus.redraw: a corpus's face windows drawn again from part of its bank.

A tiny corpus on disk (a face bank of three videos, its raw-corruption banks, shards of four splits): only the
vision arrays change; no window comes from an excluded video; with p_agree 0 no split's input depends on the
label; a "#raw" twin is cut from the bank of its own corruption; bad options are one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.features.visual import VISION_COLUMNS
from qamoe.corpus.facebank import VALENCE_COLUMN, FaceBank, FaceSequence
from qamoe.corpus.raw_corruptions import LEVELS, VIDEO_KINDS
from qamoe.corpus.redraw import RedrawConfig, redraw_corpus
from qamoe.data.featureset import FeatureSet
from qamoe.data.shards import read_shard, write_shard
from qamoe.errors import ConfigError
from qamoe.modality import MODALITIES, Modality

REPO = Path(__file__).resolve().parents[2]
STEPS, D = 40, len(VISION_COLUMNS)
VIDEOS = {"person.mp4": 0.5, "grid_a.mpg": 0.0, "grid_b.mpg": -0.5}  # name -> valence proxy of its frames
SPEC = {"vision": {"dim": D}, "note": "test"}


def _bank(offset: float = 0.0) -> FaceBank:
    seqs = []
    for k, (name, valence) in enumerate(VIDEOS.items()):
        values = np.full((60, D), offset + k, np.float32)
        values[:, VALENCE_COLUMN] = valence
        seqs.append(FaceSequence(name, values, np.ones(60, bool)))
    return FaceBank(tuple(seqs), f"key{offset}")


def _fs(ids: list[str], labels: np.ndarray, seed: int) -> FeatureSet:
    rng = np.random.default_rng(seed)
    n, t = len(ids), {Modality.TEXT: 5, Modality.AUDIO: 7, Modality.VISION: STEPS}
    dims = {Modality.TEXT: 4, Modality.AUDIO: 3, Modality.VISION: D}
    feats = {m: rng.normal(size=(n, t[m], dims[m])).astype(np.float32) for m in MODALITIES}
    masks = {m: np.ones((n, t[m]), bool) for m in MODALITIES}
    return FeatureSet(feats=feats, masks=masks, labels=labels.astype(np.float32), ids=np.array(ids))


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    _bank().save(root / "facebank" / "bank.npz")
    for i, kind in enumerate(VIDEO_KINDS):
        for j, level in enumerate(LEVELS):
            _bank(100.0 * (i + 1) + 10.0 * j).save(root / "facebank" / f"bank-{kind}-{level:.1f}.npz")
    config = {"seed": 0, "pairing": {"p_agree": 0.6, "no_face_fraction": 0.1}, "paired_splits": ["train", "train_raw"],
              "bank": {"steps": STEPS, "rate_hz": 10.0, "min_face_share": 0.5, "valence_tau": 0.1,
                       "default_fps": 25.0}}  # fmt: skip
    (root / "corpus.json").write_text(json.dumps({"config": config, "format": "qamoe-corpus"}))
    labels = np.linspace(-3, 3, 60)
    for split, suffix in (("train", ""), ("train_raw", "#raw"), ("valid", ""), ("test", "")):
        ids = [f"mosi/{split.split('_')[0]}{i}{suffix}" for i in range(60)]
        write_shard(root / f"{split}-00000.npz", _fs(ids, labels, seed=len(split)), split=split, feature_spec=SPEC)
    (root / "provenance.jsonl").write_text(json.dumps({"id": "mosi/train0", "voice": "en-us", "video": "x"}) + "\n")
    return root


def _shards(folder: Path) -> dict[str, tuple[FeatureSet, dict]]:
    return {p.name: read_shard(p) for p in sorted(folder.glob("*.npz"))}


def test_only_vision_changes_and_no_window_comes_from_an_excluded_video(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    counts = redraw_corpus(corpus, out, RedrawConfig(exclude=("*.mpg",), p_agree=0.0), created_by="test")
    assert counts == {"train": 60, "train_raw": 60, "valid": 60, "test": 60}
    before, after = _shards(corpus), _shards(out)
    assert before.keys() == after.keys()
    for name, (old, _) in before.items():
        new, _ = after[name]
        for m in (Modality.TEXT, Modality.AUDIO):
            np.testing.assert_array_equal(old.feats[m], new.feats[m])
            np.testing.assert_array_equal(old.masks[m], new.masks[m])
        np.testing.assert_array_equal(old.labels, new.labels)
        assert list(old.ids) == list(new.ids)
        vision, mask = new.feats[Modality.VISION], new.masks[Modality.VISION]
        faces = vision[mask]
        assert faces.size and not np.array_equal(faces, old.feats[Modality.VISION][mask])
        # column 0 says which video (its last digit) and which bank (its hundreds) a step was cut from
        video = np.round(faces[:, 0]) % 10
        assert set(video.tolist()) == {0.0}, f"{name}: steps cut from an excluded video"
        assert (~mask.any(axis=1)).mean() < 0.3  # the no-face share stays near the source's 0.1
    prov = [json.loads(line) for line in (out / "provenance.jsonl").read_text().splitlines()]
    assert len(prov) == 240 and all(r.get("video", "person.mp4") == "person.mp4" for r in prov)
    assert next(r for r in prov if r["id"] == "mosi/train0")["voice"] == "en-us"  # the rest of the record kept
    record = json.loads((out / "corpus.json").read_text())
    assert record["vision_redraw"]["videos"] == ["person.mp4"] and record["config"]["pairing"]["p_agree"] == 0.0


def test_raw_twins_are_cut_from_the_bank_of_their_corruption(corpus: Path, tmp_path: Path) -> None:
    redraw_corpus(corpus, tmp_path / "out", RedrawConfig(exclude=("grid_b.mpg",)), created_by="test")
    prov = {json.loads(line)["id"] for line in (tmp_path / "out" / "provenance.jsonl").read_text().splitlines()}
    assert "mosi/train0#raw" in prov
    twins, _ = read_shard(tmp_path / "out" / "train_raw-00000.npz")
    offsets = np.round(twins.feats[Modality.VISION][twins.masks[Modality.VISION]][:, 0]) // 100
    assert set(offsets.tolist()) - {0.0}, "no twin step came from a raw-corruption bank"


def test_label_independent_draws_with_p_agree_zero(corpus: Path, tmp_path: Path) -> None:
    """Labels permuted -> bit-identical vision for every split (p_agree 0); with p_agree 1 the training split
    depends on the label and the evaluation splits still do not."""
    permuted = tmp_path / "permuted"
    permuted.mkdir()
    for p in corpus.iterdir():
        if p.suffix == ".npz":
            fs, meta = read_shard(p)
            shuffled = np.random.default_rng(1).permutation(fs.labels)
            write_shard(permuted / p.name, FeatureSet(fs.feats, fs.masks, shuffled, fs.ids), split=meta["split"],
                        feature_spec=meta["feature_spec"])  # fmt: skip
        elif p.is_dir():
            (permuted / p.name).symlink_to(p)
        else:
            (permuted / p.name).write_bytes(p.read_bytes())
    for p_agree, differ in ((0.0, set()), (1.0, {"train-00000.npz", "train_raw-00000.npz"})):
        a, b = tmp_path / f"a{p_agree}", tmp_path / f"b{p_agree}"
        redraw_corpus(corpus, a, RedrawConfig(p_agree=p_agree), created_by="test")
        redraw_corpus(permuted, b, RedrawConfig(p_agree=p_agree), created_by="test")
        changed = {name for name, (fs, _) in _shards(a).items()
                   if not np.array_equal(fs.feats[Modality.VISION], _shards(b)[name][0].feats[Modality.VISION])}
        assert changed == differ, p_agree


def test_bad_options_are_one_line_errors(corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="matches no bank video"):
        redraw_corpus(corpus, tmp_path / "o1", RedrawConfig(exclude=("*.avi",)), created_by="test")
    with pytest.raises(ConfigError, match="leaves no video"):
        redraw_corpus(corpus, tmp_path / "o2", RedrawConfig(exclude=("*",)), created_by="test")
    with pytest.raises(ConfigError, match="must differ"):
        redraw_corpus(corpus, corpus, RedrawConfig(), created_by="test")
    with pytest.raises(ConfigError, match="p-agree"):
        RedrawConfig(p_agree=1.5)
    run = subprocess.run([sys.executable, str(REPO / "tools" / "redraw_vision.py"), "--corpus", str(tmp_path / "none"),
                          "--out", str(tmp_path / "o3")], check=False, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 3 and len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr
