"""tools/setup_env.sh refuses a virtual environment that holds another checkout's project (a symlinked .venv in a
git worktree): re-installing there would point the other checkout's console scripts at this one's code."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "setup_env.sh"


def _fake_venv(root: Path, project: str) -> None:
    """A venv whose python reports `project` as the installed checkout (what `import qamoe` would say)."""
    bin_dir = root / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text(f"#!/bin/sh\necho '{project}'\n", encoding="utf-8")
    (bin_dir / "python").chmod(0o755)


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="setup_env.sh checks Debian packages first")
def test_a_venv_holding_another_checkout_is_refused_with_one_line(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    (checkout / "tools").mkdir(parents=True)
    shutil.copy(SCRIPT, checkout / "tools" / "setup_env.sh")
    (checkout / "pyproject.toml").write_text("[project]\nname = 'x'\n", encoding="utf-8")
    _fake_venv(checkout, "/elsewhere/main")
    env = {**os.environ, "VENV": ".venv"}
    run = subprocess.run(["bash", str(checkout / "tools" / "setup_env.sh")], capture_output=True, text=True,
                         env=env, timeout=120, check=False)  # fmt: skip
    if "missing system packages" in run.stderr:
        pytest.skip("this machine lacks the system packages and cannot install them")
    assert run.returncode == 1, run.stderr
    assert "/elsewhere/main" in run.stderr and str(checkout.resolve()) in run.stderr
    assert "installing" not in run.stdout and not list((checkout / ".venv").glob(".installed-*"))
