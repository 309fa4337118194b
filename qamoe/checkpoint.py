"""Checkpoints: a directory holding `model.safetensors` (weights, no pickle) and `config.json` (model name, model
config, train config, feature spec, provenance, metrics). Loading never unpickles anything."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from qamoe.config import ModelConfig
from qamoe.errors import CheckpointError, ConfigError
from qamoe.models import MultimodalModel, create_model
from qamoe.provenance import git_commit

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "qamoe-checkpoint"
CHECKPOINT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def save_checkpoint(
    directory: str | Path,
    model: MultimodalModel,
    *,
    model_name: str,
    train_config: Mapping[str, Any] | None = None,
    feature_spec: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
) -> Path:
    """Write weights and config atomically (each via a temp file + rename) and return the directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model": model_name,
        "model_config": model.config.to_dict(),
        "train_config": dict(train_config or {}),
        "feature_spec": dict(feature_spec or {}),
        "metrics": dict(metrics or {}),
        "git_commit": git_commit(),
    }
    _atomic(directory / WEIGHTS_FILE, lambda p: save_file(state, str(p)))
    _atomic(directory / CONFIG_FILE, lambda p: p.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n"))
    log.info("saved %s checkpoint to %s", model_name, directory)
    return directory


def load_checkpoint(directory: str | Path) -> tuple[MultimodalModel, dict[str, Any]]:
    """-> (model in eval mode, the config.json dict). Raises CheckpointError naming what is wrong."""
    directory = Path(directory)
    meta = read_checkpoint_meta(directory)
    try:
        config = ModelConfig.from_dict(meta["model_config"])
        model = create_model(meta["model"], config)
    except (ConfigError, KeyError, TypeError) as e:
        raise CheckpointError(f"{directory / CONFIG_FILE}: invalid model config ({e})") from None
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"{weights} not found: the checkpoint is incomplete; re-save or re-train it")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{weights} is corrupt or truncated ({e}); re-save or re-train it") from None
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        first = str(e).split("\n\t")[1] if "\n\t" in str(e) else str(e)
        raise CheckpointError(f"{weights} does not match its config ({first.strip()}); re-save or re-train it") from None
    if missing or unexpected:
        raise CheckpointError(
            f"{weights} does not match its config: missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}"
        )
    model.eval()
    return model, meta


def read_checkpoint_meta(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{path} not found: pass a checkpoint directory holding {CONFIG_FILE} and {WEIGHTS_FILE}")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON ({e}); re-save the checkpoint") from None
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a {CHECKPOINT_FORMAT} config")
    if int(meta.get("version", 0)) > CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint version {meta.get('version')}, newer than this qamoe ({CHECKPOINT_VERSION}):"
            " upgrade qamoe-live"
        )
    return meta


def _atomic(path: Path, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
