"""An engines folder for plumbing runs: the built assets plus an engine of a freshly initialised QA-MoE.

For the live-pipeline tests and benchmarks, where the pipeline is under test and not the model's accuracy:
the model has the live feature spec's input dims and goes through the real checkpoint -> tools/build_engine.py
-> manifest path, so what runs is exactly what a trained checkpoint would run as.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD_ENGINE = REPO / "tools" / "build_engine.py"


def make_scratch_engines(tmp: Path, seed: int = 0, *, voice_encoder: bool = False) -> Path:
    """`tmp/engines`: the repo's built assets (linked; built first if missing) and a seeded random QA-MoE
    (`voice_encoder`: for the spec whose audio stream carries the Whisper encoder's columns)."""
    import torch

    from edge.features.spec import default_feature_spec
    from qamoe.checkpoint import save_checkpoint
    from qamoe.config import ModelConfig
    from qamoe.modality import Modality
    from qamoe.models import create_model

    real = REPO / "engines"
    if not (real / "manifest.json").is_file():
        subprocess.run([sys.executable, str(BUILD_ENGINE)], check=True, cwd=REPO)
    engines = tmp / "engines"
    engines.mkdir(parents=True)
    shutil.copy(real / "manifest.json", engines / "manifest.json")
    (engines / "assets").symlink_to(real / "assets", target_is_directory=True)
    spec = default_feature_spec(voice_encoder=voice_encoder)
    torch.manual_seed(seed)
    dims = {Modality(k): v for k, v in spec.dims.items()}
    model = create_model("qamoe", ModelConfig(input_dims=dims, d_model=32, expert_hidden=48))
    ck = save_checkpoint(tmp / "checkpoint", model, model_name="qamoe", feature_spec=spec.to_dict())
    subprocess.run(
        [sys.executable, str(BUILD_ENGINE), "--engines-dir", str(engines), "--checkpoint", str(ck), "--only", "model"],
        check=True, cwd=REPO, capture_output=True,
    )  # fmt: skip
    return engines
