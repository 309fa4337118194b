"""`tools/evaluate_release.sh` evaluates a candidate checkpoint: selection (valid) reads valid rows and valid
speakers only and never GRID or the test split; the report (test) adds the faces, GRID and the shipped-model
tests on the candidate's engines. `DRY_RUN=1` prints the steps and runs none; bad arguments exit 2."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "evaluate_release.sh"
pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "DRY_RUN": "1", "CORPUS": str(tmp_path / "corpus"), "AFFECT_VALID": str(tmp_path / "av"),
            **env}  # fmt: skip
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=REPO, env=full, capture_output=True, text=True,
                          timeout=30, check=False)  # fmt: skip


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    ck = tmp_path / "ck"
    ck.mkdir()
    (ck / "model.safetensors").write_bytes(b"")
    (tmp_path / "corpus").mkdir()
    (tmp_path / "av").mkdir()
    return ck


def _steps(stdout: str) -> dict[str, str]:
    return {line[3:].split(":", 1)[0]: line for line in stdout.splitlines() if line.startswith("== ")}


def test_selection_reads_valid_only_and_never_grid_or_test(tmp_path: Path, checkpoint: Path) -> None:
    run = _run(tmp_path, str(checkpoint), str(tmp_path / "out"), "valid")
    assert run.returncode == 0, run.stderr
    steps = _steps(run.stdout)
    assert list(steps) == ["engines", "text", "voice-live", "voice-offline"]
    assert f"--engines-dir {tmp_path}/out/engines" in steps["engines"]
    assert "--splits valid " in steps["text"] and "--split valid --json" in steps["voice-live"]  # every valid clip
    assert "--limit 30 " in _steps(_run(tmp_path, str(checkpoint), str(tmp_path / "out"), "valid", LIMIT="30").stdout)["voice-live"]
    assert "--split valid" in steps["voice-offline"] and f"shards:{tmp_path}/av" in steps["voice-offline"]
    out = run.stdout.replace(str(tmp_path), "TMP")  # pytest's folder names hold "test"
    assert "test" not in out and "grid" not in out.lower()
    assert not (tmp_path / "out").exists()  # a dry run writes nothing


def test_the_report_adds_faces_grid_and_the_shipped_tests_on_the_candidate(tmp_path: Path, checkpoint: Path) -> None:
    run = _run(tmp_path, str(checkpoint), str(tmp_path / "out"), "test", FACES="12")
    assert run.returncode == 0, run.stderr
    steps = _steps(run.stdout)
    assert list(steps) == ["engines", "text", "voice-live", "faces-live", "shipped"]
    assert "--splits test,test_asr" in steps["text"] and "--limit" not in steps["voice-live"]
    assert "--limit 12 --grid" in steps["faces-live"] and "--grid-streams" in steps["faces-live"]
    assert "tests/integration/test_shipped_model.py" in steps["shipped"]


def test_without_the_corpora_those_steps_are_skipped_with_a_reason(tmp_path: Path, checkpoint: Path) -> None:
    run = _run(tmp_path, str(checkpoint), str(tmp_path / "out"), "valid", CORPUS=str(tmp_path / "none"),
               AFFECT_VALID=str(tmp_path / "none"))  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "text: skipped" in run.stdout and "voice-offline: skipped" in run.stdout


@pytest.mark.parametrize("args", [[], ["ck", "out"], ["{ck}", "out", "train"], ["{tmp}/missing", "out", "valid"]])
def test_bad_arguments_exit_2_with_one_line(tmp_path: Path, checkpoint: Path, args: list[str]) -> None:
    args = [a.format(ck=checkpoint, tmp=tmp_path) for a in args]
    run = _run(tmp_path, *args)
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "evaluate_release.sh:" in run.stderr


def test_an_out_of_another_checkpoint_is_refused(tmp_path: Path, checkpoint: Path) -> None:
    """OUT/checkpoint names whose reports OUT holds (tools/select_default.py reads it); a second checkpoint
    into the same OUT would mix two candidates' reports."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "checkpoint").write_text(f"{tmp_path}/other\n")
    run = _run(tmp_path, str(checkpoint), str(out), "valid")
    assert run.returncode == 2 and "use another OUT" in run.stderr, run.stderr
    (out / "checkpoint").write_text(f"{checkpoint}\n")
    assert _run(tmp_path, str(checkpoint), str(out), "valid").returncode == 0
