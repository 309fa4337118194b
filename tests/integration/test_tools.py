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


def test_compare_sources_reads_each_source_and_groups_seeds(tmp_path: Path) -> None:
    """tools/compare_sources.py on shards of two folders (words corpus, affect corpus) and two seeds of one
    method: a summary per source, rows for every (checkpoint, source, degradation), and a one-line error for a
    folder without the split."""
    import numpy as np
    import torch

    from qamoe.checkpoint import save_checkpoint
    from qamoe.config import ModelConfig
    from qamoe.corpus.source_compare import DEGRADATIONS
    from qamoe.data.featureset import FeatureSet
    from qamoe.data.shards import write_shard
    from qamoe.modality import MODALITIES, Modality
    from qamoe.models import create_model

    seq = {Modality.TEXT: 6, Modality.AUDIO: 10, Modality.VISION: 8}
    dims = {Modality.TEXT: 12, Modality.AUDIO: 5, Modality.VISION: 7}
    rng = np.random.default_rng(0)

    def shard(folder: Path, ids: list[str], labels: list[float]) -> None:
        n = len(ids)
        fs = FeatureSet({m: rng.normal(size=(n, seq[m], dims[m])).astype(np.float32) for m in MODALITIES},
                        {m: np.ones((n, seq[m]), bool) for m in MODALITIES}, np.array(labels, np.float32),
                        np.array(ids))  # fmt: skip
        folder.mkdir()
        write_shard(folder / "test-00000.npz", fs, split="test", feature_spec={"toy": 1})

    shard(tmp_path / "words", [f"mosi/c_{i}" for i in range(8)], [2, -2, 1, -1, 0.5, -0.5, 3, -3])
    emotions = ["03", "04", "05", "01", "03", "06"]  # happy, sad, angry, neutral, happy, fearful
    shard(tmp_path / "voices", [f"ravdess/03-01-{e}-01-01-01-2{i % 4 + 1}" for i, e in enumerate(emotions)],
          [2, -1.5, -2, 0, 2, -1.5])  # fmt: skip
    cks = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = create_model("qamoe", ModelConfig(input_dims=dims, d_model=16, expert_hidden=24))
        cks.append(str(save_checkpoint(tmp_path / f"ck{seed}", model, model_name="qamoe",
                                       train_config={"method": "qamoe[d_model=16]", "seed": seed})))  # fmt: skip
    out = tmp_path / "cmp"
    r = _run("tools/compare_sources.py", "--corpus", str(tmp_path / "words"), "--affect", str(tmp_path / "voices"),
             "--checkpoints", *cks, "--out", str(out), timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    summary = (out / "summary.md").read_text()
    assert "| qamoe | 2 |" in summary and "mosi Acc-2" in summary and "ravdess AUC" in summary
    rows = (out / "rows.csv").read_text().splitlines()
    assert rows[0].startswith("# provenance:")
    assert len(rows) == 2 + 2 * 2 * len(DEGRADATIONS)  # provenance, header, checkpoints x sources x degradations
    r = _run("tools/compare_sources.py", "--corpus", str(tmp_path / "words"), "--split", "valid",
             "--checkpoints", *cks, "--out", str(out), timeout=120)  # fmt: skip
    assert r.returncode == 3 and "Traceback" not in r.stderr, (r.returncode, r.stderr)


@pytest.mark.slow
def test_evaluate_text_path_reads_a_split_that_holds_one_dataset(tmp_path: Path) -> None:
    """tools/evaluate_text_path.py on the corpus as docs/CORPUS.md builds it: `test` holds MOSEI and MOSI,
    `test_asr` MOSI alone (`--datasets mosi --asr-test`). The MOSEI cell of test_asr says it has no rows instead
    of stopping the evaluation (tools/evaluate_release.sh ... test did, 2026-12-08)."""
    import numpy as np
    import torch

    from qamoe.checkpoint import save_checkpoint
    from qamoe.config import ModelConfig
    from qamoe.data.featureset import FeatureSet
    from qamoe.data.shards import write_shard
    from qamoe.modality import MODALITIES, Modality
    from qamoe.models import create_model

    seq = {Modality.TEXT: 6, Modality.AUDIO: 10, Modality.VISION: 8}
    dims = {Modality.TEXT: 12, Modality.AUDIO: 5, Modality.VISION: 7}
    rng = np.random.default_rng(0)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for split, datasets in (("test", ("mosei", "mosi")), ("test_asr", ("mosi",))):
        ids = [f"{d}/c_{i}" for d in datasets for i in range(6)]
        n = len(ids)
        fs = FeatureSet({m: rng.normal(size=(n, seq[m], dims[m])).astype(np.float32) for m in MODALITIES},
                        {m: np.ones((n, seq[m]), bool) for m in MODALITIES},
                        np.array([2, -2, 1, -1, 0.5, -0.5] * len(datasets), np.float32), np.array(ids))  # fmt: skip
        write_shard(corpus / f"{split}-00000.npz", fs, split=split, feature_spec={"toy": 1})
    torch.manual_seed(0)
    model = create_model("qamoe", ModelConfig(input_dims=dims, d_model=16, expert_hidden=24))
    ck = str(save_checkpoint(tmp_path / "ck", model, model_name="qamoe", train_config={"seed": 0}))
    r = _run("tools/evaluate_text_path.py", "--corpus", str(corpus), "--checkpoint", ck, timeout=300)
    assert r.returncode == 0, r.stderr
    row = next(line for line in r.stdout.splitlines() if line.startswith(f"| {ck} |"))
    cells = [c.strip() for c in row.strip("|").split("|")][1:]
    assert len(cells) == 4 and cells[2] == "no rows", cells  # MOSEI gold, MOSI gold, MOSEI ASR, MOSI ASR
    assert all(c.count(" / ") == 2 for i, c in enumerate(cells) if i != 2), cells
