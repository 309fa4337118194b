"""MMSA-definition metrics on small arrays whose expected values are worked out by hand below."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qamoe.errors import DataError
from qamoe.metrics import METRIC_KEYS, format_metrics, pearson, regression_metrics, weighted_f1

#               0     1     2    3    4    5    6     7
LABELS = [-2.6, -1.0, 0.0, 0.4, 1.5, 2.5, 3.4, -3.2]
PREDS = [-2.2, 0.0, -0.4, 1.2, 1.4, 3.8, 2.6, 0.5]


def test_hand_checked_example() -> None:
    r = regression_metrics(np.array(PREDS), np.array(LABELS))
    assert tuple(r) == METRIC_KEYS
    # Has0: truth = label >= 0 -> F F T T T T T F; pred = pred >= 0 -> F T F T T T T T
    # (pred 0.0 counts as non-negative).
    # Agree at 0, 3, 4, 5, 6 -> 5/8.
    assert r["has0_acc2"] == pytest.approx(5 / 8)
    # class T: support 5, predicted 6 times, tp 4 -> F1 = 2*4 / (6+5) = 8/11.
    # class F: support 3, predicted 2 times, tp 1 -> F1 = 2*1 / (2+3) = 2/5.
    # weighted: (5 * 8/11 + 3 * 2/5) / 8 = 133/220.
    assert r["has0_f1"] == pytest.approx(133 / 220)
    # Non0 drops sample 2 (label exactly 0). truth = label > 0 -> F F T T T T F at 0 1 3 4 5 6 7;
    # pred = pred > 0 -> F F T T T T T (pred 0.0 is now negative). Agree everywhere but 7 -> 6/7.
    assert r["non0_acc2"] == pytest.approx(6 / 7)
    # class T: support 4, predicted 5, tp 4 -> 8/9; class F: support 3, predicted 2, tp 2 -> 4/5.
    # weighted: (4 * 8/9 + 3 * 4/5) / 7 = 268/315.
    assert r["non0_f1"] == pytest.approx(268 / 315)
    # Acc-7, clip to [-3, 3] then round half to even:
    #   labels -2.6 -1 0 0.4 1.5 2.5 3.4->3 -3.2->-3  ->  -3 -1 0 0 2 2 3 -3
    #   preds  -2.2  0 -0.4 1.2 1.4 3.8->3 2.6 0.5     ->  -2  0 0 1 1 3 3 0
    # equal at 2 and 6 (6 only thanks to clipping 3.4) -> 2/8.
    # 2.5 rounds half-to-even to 2 (not 3), so sample 5 stays unequal.
    assert r["acc7"] == pytest.approx(2 / 8)
    # Acc-5, clip to [-2, 2]:
    #   labels -2 -1 0 0.4 1.5 2 2 -2  ->  -2 -1 0 0 2 2 2 -2
    #   preds  -2  0 -0.4 1.2 1.4 2 2 0.5  ->  -2 0 0 1 1 2 2 0   -> equal at 0, 2, 5, 6 -> 4/8.
    assert r["acc5"] == pytest.approx(4 / 8)
    # MAE, unclipped: 0.4 + 1.0 + 0.4 + 0.8 + 0.1 + 1.3 + 0.8 + 3.7 = 8.5 -> 8.5/8.
    assert r["mae"] == pytest.approx(8.5 / 8)
    assert r["corr"] == pytest.approx(np.corrcoef(PREDS, LABELS)[0, 1])


def test_pearson_by_hand_and_constant_inputs() -> None:
    # centred: [-1, 0, 1] and [-1, 1, 0]; dot 1, norms sqrt(2) * sqrt(2) = 2 -> 0.5.
    assert pearson(np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0])) == pytest.approx(0.5)
    assert pearson(np.array([1.0, 2.0, 3.0]), np.array([-2.0, -4.0, -6.0])) == pytest.approx(-1.0)
    assert math.isnan(pearson(np.full(5, 0.1), np.arange(5.0)))
    assert math.isnan(pearson(np.array([1.0]), np.array([2.0])))


def test_all_zero_labels_give_nan_non0_and_constant_corr() -> None:
    r = regression_metrics(np.array([0.5, -0.5, 0.0]), np.zeros(3))
    assert math.isnan(r["non0_acc2"]) and math.isnan(r["non0_f1"])
    assert math.isnan(r["corr"])  # labels constant
    # Has0: truth T T T, pred T F T -> 2/3; class T: support 3, predicted 2, tp 2 -> 4/5; class F: no support.
    assert r["has0_acc2"] == pytest.approx(2 / 3)
    assert r["has0_f1"] == pytest.approx(0.8)
    assert r["mae"] == pytest.approx(1.0 / 3)


def test_weighted_f1_with_a_never_predicted_class() -> None:
    truth = np.array([True, True, False, False])
    # class T: support 2, predicted 4, tp 2 -> 4/6; class F: never predicted -> F1 0.
    # (2 * 2/3 + 2 * 0) / 4 = 1/3.
    assert weighted_f1(truth, np.ones(4, bool)) == pytest.approx(1 / 3)
    assert weighted_f1(truth, truth) == pytest.approx(1.0)
    # Multi-class too: truth a a b c, pred a b b b -> a: 2*1/(1+2) = 2/3, b: 2*1/(3+1) = 1/2, c: 0.
    # (2 * 2/3 + 1 * 1/2 + 1 * 0) / 4 = 11/24.
    assert weighted_f1(np.array(list("aabc")), np.array(list("abbb"))) == pytest.approx(11 / 24)


def test_inputs_are_flattened_and_validated() -> None:
    r = regression_metrics(np.array(PREDS).reshape(-1, 1), np.array(LABELS))
    assert r["acc7"] == pytest.approx(2 / 8)
    with pytest.raises(DataError, match="predictions for"):
        regression_metrics(np.zeros(3), np.zeros(4))
    with pytest.raises(DataError, match="empty"):
        regression_metrics(np.zeros(0), np.zeros(0))
    with pytest.raises(DataError, match="NaN"):
        regression_metrics(np.array([0.1, np.nan]), np.array([1.0, -1.0]))


def test_format_metrics_one_line() -> None:
    d = {"has0_acc2": 0.8546, "has0_f1": 0.85, "non0_acc2": 0.5, "non0_f1": float("nan"), "acc5": 0.25,
         "acc7": 0.4667, "mae": 0.70812, "corr": 0.7964}
    assert format_metrics(d) == (
        "has0_acc2=85.46 has0_f1=85.00 non0_acc2=50.00 non0_f1=nan acc5=25.00 acc7=46.67 mae=0.708 corr=0.796"
    )
    assert "\n" not in format_metrics(regression_metrics(np.array(PREDS), np.array(LABELS)))


def test_auc_is_the_probability_a_positive_outranks_a_negative() -> None:
    from qamoe.metrics import auc

    assert auc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0
    assert auc(np.array([0.0, 1.0]), np.array([2.0, 3.0])) == 0.0
    assert auc(np.array([1.0]), np.array([1.0])) == 0.5  # ties count half
    assert auc(np.array([1.0, 3.0]), np.array([2.0])) == 0.5
    assert np.isnan(auc(np.array([]), np.array([1.0])))
    rng = np.random.default_rng(0)
    a, b = rng.normal(1, 1, 400), rng.normal(0, 1, 300)
    # the closed form for two unit normals one apart: Phi(1 / sqrt(2)) = 0.760
    assert abs(auc(a, b) - 0.760) < 0.04
