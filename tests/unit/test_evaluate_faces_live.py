"""tools/evaluate_faces_live.py's GRID summary: every window, each clip's last against its earlier ones, and the
first four clips by name (the shipped-model test's guard)."""

from __future__ import annotations

import math

import pytest

from tools.evaluate_faces_live import format_grid, grid_summary


def test_grid_windows_are_split_into_last_earlier_and_the_guards_first_four() -> None:
    runs = {"e.mpg": [1.0], "b.mpg": [-1.0, -0.5, 0.5], "a.mpg": [-2.0, 0.0], "d.mpg": [], "c.mpg": [0.25, -0.25]}
    got = grid_summary(runs)
    assert got["all"] == {"n": 8, "mean": pytest.approx(-2.0 / 8), "mean_abs": pytest.approx(5.5 / 8)}
    # last of a, b, c, e (d has none): 0.0, 0.5, -0.25, 1.0
    assert got["last"] == {"n": 4, "mean": pytest.approx(1.25 / 4), "mean_abs": pytest.approx(1.75 / 4)}
    assert got["earlier"] == {"n": 4, "mean": pytest.approx(-3.25 / 4), "mean_abs": pytest.approx(3.75 / 4)}
    # first four by name: a, b, c, d (not e, the first key given)
    assert got["first4"] == {"n": 7, "mean": pytest.approx(-3.0 / 7), "mean_abs": pytest.approx(4.5 / 7)}
    line = format_grid(got)
    assert "8 windows" in line and "first four clips |v| 0.643" in line and "earlier windows -0.812" in line


def test_an_empty_grid_run_gives_nan_not_an_error() -> None:
    got = grid_summary({"a.mpg": []})
    assert got["all"]["n"] == 0 and math.isnan(got["all"]["mean"]) and math.isnan(got["first4"]["mean_abs"])
