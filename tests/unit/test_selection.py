"""The rule that picks the next default among candidate seeds (qamoe.corpus.selection): fixed before any test
split is read, fed only valid-split reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from qamoe.corpus.selection import Candidate, SelectionError, rank, targets_met

ROOT = Path(__file__).resolve().parents[2]


def report(split: str, end: dict[str, list[bool]], progress: dict[str, list[bool]]) -> dict:
    """A voice-live report as tools/evaluate_affect_live.py writes it, with only what the rule reads."""

    def rows(met: dict[str, list[bool]]) -> list[dict]:
        keys = ("auc", "happy_minus_negative", "neutral_abs")
        return [{"dataset": d, "met": dict(zip(keys, m, strict=True))} for d, m in met.items()] + [
            {"dataset": "speech_va", "spearman": 0.4}
        ]

    return {"split": split, "rows": rows(end), "in_progress_rows": rows(progress)}


ALL = [True, True, True]


def test_targets_met_counts_both_corpora_at_clip_end_and_in_progress() -> None:
    r = report("valid", {"ravdess": ALL, "emodb": [True, False, True]}, {"ravdess": [False] * 3, "emodb": ALL})
    assert targets_met(r) == (8, 12)


def test_a_missing_corpus_counts_its_targets_as_unmet() -> None:
    r = report("valid", {"ravdess": ALL}, {"ravdess": ALL})
    assert targets_met(r) == (6, 12)


def test_a_test_split_report_is_refused() -> None:
    with pytest.raises(SelectionError, match="test"):
        targets_met(report("test", {"ravdess": ALL, "emodb": ALL}, {"ravdess": ALL, "emodb": ALL}))
    with pytest.raises(SelectionError, match="split"):
        targets_met({"rows": [], "in_progress_rows": []})  # an old report that does not say


def test_rank_by_targets_met_then_validation_score() -> None:
    a = Candidate("a", met=9, total=12, valid_score=0.90)
    b = Candidate("b", met=10, total=12, valid_score=1.20)
    c = Candidate("c", met=10, total=12, valid_score=1.00)  # lower is better (validation MAE)
    assert [x.name for x in rank([a, b, c])] == ["c", "b", "a"]


def test_rank_needs_a_candidate() -> None:
    with pytest.raises(SelectionError):
        rank([])


def write_candidate(root: Path, name: str, split: str, met: list[bool], score: float) -> Path:
    ck = root / f"{name}-ck"
    ck.mkdir()
    (ck / "config.json").write_text(json.dumps({"metrics": {"valid_score": score, "best_epoch": 3}}))
    out = root / name
    (out / "valid").mkdir(parents=True)  # where the tool looks; `split` is what the report says it measured
    (out / "checkpoint").write_text(str(ck) + "\n")
    (out / "valid" / "voice-live.json").write_text(
        json.dumps(report(split, {"ravdess": met, "emodb": met}, {"ravdess": met, "emodb": met}))
    )
    return out


def test_the_tool_prints_the_ranking_and_exits_2_on_a_test_report(tmp_path: Path) -> None:
    a = write_candidate(tmp_path, "s0", "valid", [True, True, False], 1.1)
    b = write_candidate(tmp_path, "s1", "valid", [True, True, True], 1.3)
    run = subprocess.run([sys.executable, str(ROOT / "tools/select_default.py"), str(a), str(b)],
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    assert lines[-1].startswith(f"chosen: {b}") and "12/12" in lines[-1]
    bad = write_candidate(tmp_path, "s2", "test", [True, True, True], 0.5)
    run = subprocess.run([sys.executable, str(ROOT / "tools/select_default.py"), str(a), str(bad)],
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert run.returncode == 2 and "valid" in run.stderr and "Traceback" not in run.stderr
