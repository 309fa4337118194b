"""Training end to end on a small synthetic benchmark: the mechanism works, checkpoints round-trip."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from qamoe.checkpoint import load_checkpoint, save_checkpoint
from qamoe.config import ModelConfig
from qamoe.data.synthetic import SyntheticConfig, make_benchmark
from qamoe.errors import CheckpointError
from qamoe.evaluation import evaluate_conditions, predict
from qamoe.modality import MODALITIES, Modality
from qamoe.models import create_model
from qamoe.spectrum import Condition, ModalityCorruption
from qamoe.training import TrainConfig, train_model


@pytest.fixture(scope="module")
def data():
    return make_benchmark(SyntheticConfig(n_train=2000, n_valid=300, n_test=600, seed=5))


@pytest.fixture(scope="module")
def trained(data):
    torch.manual_seed(0)
    cfg = ModelConfig(input_dims=data["train"].dims, d_model=32, expert_hidden=48)
    model = create_model("qamoe", cfg)
    return train_model(model, data["train"], data["valid"], TrainConfig(epochs=8, seed=0), progress=False)


def _single(m: Modality, corruption: str, severity: float) -> Condition:
    return Condition("probe", f"{m}:{corruption}={severity}", {"severity": severity}, {m: (ModalityCorruption(corruption, severity),)})


def test_trained_model_beats_the_mean_predictor(trained, data) -> None:
    pred = predict(trained.model, data["test"])
    mae = np.mean(np.abs(pred.valence - data["test"].labels))
    baseline = np.mean(np.abs(data["test"].labels - np.median(data["train"].labels)))
    assert mae < 0.6 * baseline, (mae, baseline)


@pytest.mark.parametrize("modality", list(MODALITIES))
@pytest.mark.parametrize("corruption", ["gaussian_noise", "random_missing"])
def test_reliability_falls_monotonically_with_severity(trained, data, modality, corruption) -> None:
    severities = [0.0, 0.3, 0.6, 0.9]
    rows = evaluate_conditions(trained.model, data["test"], [_single(modality, corruption, s) for s in severities])
    rel = [row[f"rel_{modality}"] for row in rows]
    assert all(a > b for a, b in itertools.pairwise(rel)), f"{modality} {corruption}: {rel}"
    # the other modalities' reliabilities are not what moved
    others = [m for m in MODALITIES if m != modality]
    for m in others:
        assert abs(rows[0][f"rel_{m}"] - rows[-1][f"rel_{m}"]) < abs(rel[0] - rel[-1])


def test_absent_modality_has_the_lowest_reliability(trained, data) -> None:
    rows = evaluate_conditions(
        trained.model,
        data["test"],
        [_single(Modality.TEXT, "random_missing", 0.9), _single(Modality.TEXT, "modality_absence", 1.0)],
    )
    assert rows[1]["rel_text"] < rows[0]["rel_text"]


def test_checkpoint_round_trip(tmp_path, trained, data) -> None:
    save_checkpoint(tmp_path / "ck", trained.model, model_name="qamoe", train_config={"epochs": 8})
    model, meta = load_checkpoint(tmp_path / "ck")
    assert meta["model"] == "qamoe" and meta["git_commit"]
    subset = data["test"].subset(slice(0, 50))
    np.testing.assert_allclose(predict(model, subset).valence, predict(trained.model, subset).valence, atol=1e-6)


def test_truncated_or_corrupt_checkpoint_is_refused(tmp_path, trained) -> None:
    ck = save_checkpoint(tmp_path / "ck", trained.model, model_name="qamoe")
    weights = ck / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(ck)
    (ck / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(ck)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nowhere")


def test_checkpoint_config_mismatch_is_refused(tmp_path, trained) -> None:
    ck = save_checkpoint(tmp_path / "ck", trained.model, model_name="qamoe")
    meta = json.loads((ck / "config.json").read_text())
    meta["model_config"]["d_model"] = 16
    (ck / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="does not match"):
        load_checkpoint(ck)


def test_selection_by_source_weighs_every_source_alike(trained, data) -> None:
    from qamoe.errors import ConfigError
    from qamoe.training import validation_mae

    valid = data["valid"]
    err = np.abs(predict(trained.model, valid).valence - valid.labels)
    ids = np.array([("small/" if i < 30 else "big/") + str(k) for i, k in enumerate(valid.ids)])
    tagged = type(valid)(feats=valid.feats, masks=valid.masks, labels=valid.labels, ids=ids)
    assert validation_mae(trained.model, tagged) == pytest.approx(float(err.mean()), rel=1e-5)
    by_source = 0.5 * (err[:30].mean() + err[30:].mean())
    assert validation_mae(trained.model, tagged, by="source") == pytest.approx(float(by_source), rel=1e-5)
    with pytest.raises(ConfigError, match="select_by"):
        TrainConfig(select_by="speaker")


def test_training_on_repeated_rows_equals_training_on_their_copies(data) -> None:
    """A repeated corpus is held once (qamoe.data.featureset.RepeatedRows, `shards:DIR*K`); the trainer must
    not tell it from the materialised repeat: the same batches, statistics and weights, bit for bit."""
    from qamoe.data.featureset import RepeatedRows

    base = data["train"].subset(np.arange(300))
    rows = np.concatenate([np.arange(300), np.arange(100, 200), np.arange(300)])
    weights = []
    for train_set in (RepeatedRows(base, rows), base.subset(rows)):
        torch.manual_seed(0)
        model = create_model("qamoe", ModelConfig(input_dims=base.dims, d_model=16, expert_hidden=24))
        cfg = TrainConfig(epochs=2, seed=3, threads=1)
        train_model(model, train_set, data["valid"], cfg, progress=False)
        weights.append(model.state_dict())
    for name, value in weights[0].items():
        assert torch.equal(value, weights[1][name]), name
