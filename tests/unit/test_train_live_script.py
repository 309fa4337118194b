"""`tools/train_live.sh` builds the trainings of the live recipe (issue 15, part 5): the data string joins the
MOSI/MOSEI corpus with the affect corpus's views (without and with the lead-in) repeated, `--permissive` leaves RAVDESS and FER2013 out of both, and
every data string it writes is one `qamoe.data.sources` reads. `--dry-run` prints the commands and runs none."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from qamoe.data.sources import _folder_and_repeat

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "train_live.sh"
pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _dry_run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "corpus").mkdir(exist_ok=True)
    (tmp_path / "affect").mkdir(exist_ok=True)
    (tmp_path / "affect-lead").mkdir(exist_ok=True)
    full = {**os.environ, "CORPUS": str(tmp_path / "corpus"), "AFFECT": f"{tmp_path}/affect,{tmp_path}/affect-lead",
            "OUT": str(tmp_path / "out"), **env}
    return subprocess.run(["bash", str(SCRIPT), "--dry-run", *args], cwd=REPO, env=full, capture_output=True,
                          text=True, timeout=30, check=False)


def _data_strings(stdout: str) -> list[str]:
    return re.findall(r"tools/train\.py --data (\S+) ", stdout)


def test_the_default_recipe_joins_both_corpora_for_every_method_and_seed(tmp_path: Path) -> None:
    run = _dry_run(tmp_path)
    assert run.returncode == 0, run.stderr
    data = _data_strings(run.stdout)
    assert len(data) == 12, run.stdout  # 4 methods x 3 seeds
    assert set(data) == {f"shards:{tmp_path}/corpus,{tmp_path}/affect*4,{tmp_path}/affect-lead*4"}
    assert run.stdout.count("--select-by source") == 12 and run.stdout.count("--epochs 12") == 12
    assert not (tmp_path / "out").exists()  # a dry run makes nothing


def test_permissive_leaves_the_restricted_sources_out_of_both_corpora(tmp_path: Path) -> None:
    run = _dry_run(tmp_path, "--permissive", SEEDS="0", METHODS="qamoe")
    assert run.returncode == 0, run.stderr
    (data,) = _data_strings(run.stdout)
    items = data.removeprefix("shards:").split(",")
    parsed = [_folder_and_repeat(item) for item in items]
    assert [(folder.name, left_out, times) for folder, left_out, times in parsed] == [
        ("corpus", ("ravdess", "fer"), 1),
        ("affect", ("ravdess", "fer"), 4),
        ("affect-lead", ("ravdess", "fer"), 4),
    ]
    assert f"--out {tmp_path}/out/qamoe-s0" in run.stdout


def test_mosi_mosei_alone_and_bad_arguments(tmp_path: Path) -> None:
    alone = _dry_run(tmp_path, SEEDS="0", METHODS="qamoe", AFFECT="", EPOCHS="5", SELECT_BY="rows")
    assert _data_strings(alone.stdout) == [f"shards:{tmp_path}/corpus"], alone.stdout
    assert "--select-by rows" in alone.stdout
    wide = _dry_run(tmp_path, SEEDS="0", METHODS="qamoe", WIDTH="d_model=64,expert_hidden=96")
    assert "--model qamoe[d_model=64,expert_hidden=96,router_logits=standardised] " in wide.stdout, wide.stdout
    old_router = _dry_run(tmp_path, SEEDS="0", METHODS="qamoe", ROUTER="raw", EXTRA="absent_variance=learned")
    assert "--model qamoe[d_model=64,expert_hidden=96,router_logits=raw,absent_variance=learned] " in old_router.stdout
    bad = _dry_run(tmp_path, "--bogus")
    assert bad.returncode == 2 and "unknown argument --bogus" in bad.stderr
    missing = _dry_run(tmp_path, CORPUS=str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "nowhere not found" in missing.stderr
    one = _dry_run(tmp_path, SEEDS="0", METHODS="qamoe", AFFECT=str(tmp_path / "affect"), AFFECT_REPEAT="8")
    assert _data_strings(one.stdout) == [f"shards:{tmp_path}/corpus,{tmp_path}/affect*8"], one.stdout
    no_lead = _dry_run(tmp_path, AFFECT=f"{tmp_path}/affect,{tmp_path}/no-lead-view")
    assert no_lead.returncode == 2 and "no-lead-view not found" in no_lead.stderr
