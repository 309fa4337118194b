"""qamoe.corpus.source_compare: rows split by source, the degradations hit one stream only, every model reads the
same corrupted rows, and the tables average seeds per method."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qamoe.config import ModelConfig
from qamoe.corpus import source_compare
from qamoe.corpus.source_compare import (
    DEGRADATIONS,
    Degradation,
    clean_table,
    compare,
    degraded_table,
    split_by_source,
)
from qamoe.data.featureset import FeatureSet
from qamoe.evaluation import Predictions, predict
from qamoe.modality import MODALITIES, Modality
from qamoe.models import MultimodalModel, create_model
from qamoe.spectrum.protocols import apply_condition

SEQ = {Modality.TEXT: 6, Modality.AUDIO: 10, Modality.VISION: 8}
DIMS = {Modality.TEXT: 12, Modality.AUDIO: 5, Modality.VISION: 7}
# RAVDESS names its emotion in the third field (03 happy, 04 sad, 05 angry, 01 neutral), the actor in the last
IDS = ["mosi/a_1", "mosi/a_2", "mosi/a_2#asr", "mosei/b$_$1", "mosei/b$_$2", "ravdess/03-01-03-01-01-01-21",
       "ravdess/03-01-04-01-01-01-21", "ravdess/03-01-05-01-01-01-22", "ravdess/03-01-01-01-01-01-22",
       "speech_va/1", "speech_va/2", "speech_va/3", "other/x"]  # fmt: skip
LABELS = np.array([1, -1, -1, 2, -2, 2, -2, -2, 0, 0.5, -0.5, 0.1, 0], np.float32)


def _rows(labels: np.ndarray | None = None) -> FeatureSet:
    rng = np.random.default_rng(0)
    n = len(IDS)
    return FeatureSet(
        feats={m: rng.normal(size=(n, SEQ[m], DIMS[m])).astype(np.float32) for m in MODALITIES},
        masks={m: np.ones((n, SEQ[m]), bool) for m in MODALITIES},
        labels=labels if labels is not None else LABELS,
        ids=np.array(IDS),
    )


def _model(seed: int) -> MultimodalModel:
    torch.manual_seed(seed)
    return create_model("qamoe", ModelConfig(input_dims=DIMS, d_model=16, expert_hidden=24, dropout=0.0))


def test_rows_are_split_by_source_without_twins_or_unknown_sources() -> None:
    sources = split_by_source(_rows())
    assert list(sources) == ["mosi", "mosei", "ravdess", "speech_va"]
    assert [str(i) for i in sources["mosi"].ids] == ["mosi/a_1", "mosi/a_2"]
    assert len(sources["ravdess"]) == 4


def test_a_degradation_hits_its_stream_and_nothing_else() -> None:
    fs = _rows()
    for deg in DEGRADATIONS:
        out = apply_condition(fs, deg.condition(), np.random.default_rng(0))
        for m in MODALITIES:
            same = np.array_equal(out.feats[m], fs.feats[m]) and np.array_equal(out.masks[m], fs.masks[m])
            assert same == (m != deg.modality), (deg.name, m)
    gone = apply_condition(fs, Degradation("gone", Modality.AUDIO, "modality_absence", 1.0).condition(),
                           np.random.default_rng(0))  # fmt: skip
    assert not gone.masks[Modality.AUDIO].any()


def test_every_model_and_any_labelling_read_the_same_corrupted_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """The corruption's generator is seeded by (seed, source, degradation): not by the model, not by the label.
    Two different models' reliabilities differ, but what they read is the same; shuffled labels change the
    metrics only."""
    fs = _rows()
    seen: list[dict[str, np.ndarray]] = []

    def recording_predict(model: MultimodalModel, rows: FeatureSet) -> Predictions:  # what the model is given
        seen.append({str(m): rows.feats[m].copy() for m in MODALITIES})
        return predict(model, rows)

    monkeypatch.setattr(source_compare, "predict", recording_predict)
    compare(_model(0), split_by_source(fs), seed=3)
    first, seen[:] = list(seen), []
    permuted = fs.labels[np.random.default_rng(1).permutation(len(fs))]
    compare(_model(1), split_by_source(_rows(labels=permuted)), seed=3)
    assert len(first) == len(seen) == 4 * len(DEGRADATIONS)
    for a, b in zip(first, seen, strict=True):
        for m in a:
            np.testing.assert_array_equal(a[m], b[m])


def test_tables_average_the_seeds_of_a_method() -> None:
    fs = split_by_source(_rows())
    rows = []
    for seed in (0, 1):
        rows += [r | {"method": "qamoe", "seed": seed} for r in compare(_model(seed), fs, DEGRADATIONS[:2])]
    clean = clean_table(rows, ["qamoe"])
    assert "| qamoe | 2 |" in clean and "ravdess AUC" in clean and "±" in clean
    degraded = degraded_table(rows, ["qamoe"])
    assert "voice noise 0.5" in degraded.splitlines()[0]
    assert sum(line.startswith("| ravdess | auc | qamoe |") for line in degraded.splitlines()) == 1
