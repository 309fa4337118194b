"""Rank statistics of the reliability-fidelity measures (qamoe.fidelity), on arrays worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qamoe.fidelity import absent_last_ceiling, average_ranks, spearman


def test_average_ranks_share_ties() -> None:
    assert average_ranks(np.array([3.0, 1.0, 3.0, 2.0])).tolist() == [2.5, 0.0, 2.5, 1.0]


def test_spearman_by_hand() -> None:
    assert spearman(np.array([0, 1, 2, 3]), np.array([9, 7, 5, 1])) == pytest.approx(-1.0)
    # ranks of b: 1 0 3 2, centred -0.5 -1.5 1.5 0.5, against -1.5 -0.5 0.5 1.5: products 3, squares 5
    assert spearman(np.array([0, 1, 2, 3]), np.array([2, 1, 4, 3])) == pytest.approx(0.6)
    assert math.isnan(spearman(np.array([0, 1, 2]), np.array([5, 5, 5])))


def test_ceiling_is_minus_one_when_every_row_observes_the_modality() -> None:
    sev = np.array([0, 0, 0.2, 1.0, 0.6])
    assert absent_last_ceiling(sev, np.ones(5, bool)) == pytest.approx(-1.0)


def test_ceiling_by_hand_two_twins_one_absent() -> None:
    # rows: A clean (sev 0), B clean (sev 0), A corrupted (sev 1), B corrupted (sev 1); B has no face.
    sev = np.array([0.0, 0.0, 1.0, 1.0])
    seen = np.array([True, False, True, False])
    # B below everything: r ranks 4, 1.5, 3, 1.5 -> rho = -1 / (2 sqrt(4.5)) = -0.236.
    # B tied with A's corrupted row: r ranks 4, 2, 2, 2 -> rho = -2 / (2 sqrt(3)) = -0.577, the better one.
    assert absent_last_ceiling(sev, seen) == pytest.approx(-1 / math.sqrt(3))


def test_no_score_that_ranks_absent_rows_lowest_beats_the_ceiling() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(4, 30))
        twin_sev = rng.choice([0.2, 0.4, 0.6, 0.8, 1.0], n)
        sev = np.concatenate([np.zeros(n), twin_sev])
        seen = np.tile(rng.random(n) < 0.8, 2)
        if not seen.any():
            continue
        ceiling = absent_last_ceiling(sev, seen)
        # a score that falls with severity, plus noise, on the present rows; the absent rows share one value
        # at or below the lowest present score (the same input gives the same score)
        r = np.where(seen, 1 - sev + rng.normal(0, rng.uniform(0, 0.5), 2 * n), 0.0)
        r[~seen] = r[seen].min() - rng.choice([0.0, 1.0])
        rho = spearman(sev, r)
        assert np.isnan(rho) or rho >= ceiling - 1e-12


def test_ceiling_of_the_ideal_score_is_reached() -> None:
    rng = np.random.default_rng(1)
    sev = np.concatenate([np.zeros(50), rng.choice([0.2, 0.4, 0.6, 0.8, 1.0], 50)])
    seen = np.tile(np.arange(50) >= 6, 2)
    ideal = np.where(seen, -sev, -2.0)
    ceiling = absent_last_ceiling(sev, seen)
    assert ceiling <= spearman(sev, ideal) + 1e-12
    assert -1.0 < ceiling < -0.5  # six faceless twins of fifty cost a perfect score part of its -1


def test_ceiling_rejects_mismatched_shapes_and_is_nan_without_present_rows() -> None:
    with pytest.raises(ValueError, match="shape"):
        absent_last_ceiling(np.zeros(4), np.ones(3, bool))
    assert math.isnan(absent_last_ceiling(np.array([0.0, 1.0]), np.zeros(2, bool)))
