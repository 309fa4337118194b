"""The research command-line tools, run as a user runs them (subprocesses), including their error paths."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.slow
def test_train_then_evaluate(tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    r = _run("tools/train.py", "--data", "synthetic:3", "--epochs", "1", "--out", str(ck))
    assert r.returncode == 0, r.stderr
    assert (ck / "model.safetensors").is_file() and (ck / "config.json").is_file()
    out = tmp_path / "eval"
    r = _run("tools/evaluate.py", "--checkpoints", str(ck), "--data", "synthetic:3", "--protocols", "clean",
             "missing_patterns", "--out", str(out))
    assert r.returncode == 0, r.stderr
    rows = (out / "rows.csv").read_text().splitlines()
    assert rows[0].startswith("# provenance:") and '"git_commit"' in rows[0]
    assert len(rows) == 2 + 1 + 7  # provenance, header, clean, 7 patterns
    assert (out / "spectrum.png").stat().st_size > 10_000
    assert "| qamoe |" in (out / "summary.md").read_text()


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["tools/train.py", "--data", "imagenet", "--out", "x"], 2, "unknown data source"),
        (["tools/train.py", "--data", "mmsa:/nonexistent.pkl", "--out", "x"], 3, "nonexistent.pkl"),
        (["tools/train.py", "--model", "qamoe[topk=2]", "--data", "synthetic", "--out", "x"], 2, "topk"),
        (["tools/evaluate.py", "--checkpoints", "/nonexistent", "--out", "x"], 4, "config.json"),
    ],
)
def test_bad_input_gives_one_line_and_an_exit_code(args: list[str], code: int, needle: str) -> None:
    r = _run(*args, timeout=120)
    assert r.returncode == code, (r.returncode, r.stderr)
    assert needle in r.stderr
    assert "Traceback" not in r.stderr
