"""Train-and-evaluate grids: several methods x seeds on one data source, every method in the same harness.

A method is a registry name with optional config overrides: `qamoe`, `early_fusion`,
`qamoe[reliability_objective=clean_recon]`, `qamoe[top_k=2,n_experts=4]`."""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm import tqdm

from qamoe.config import ModelConfig
from qamoe.data.featureset import FeatureSet
from qamoe.errors import ConfigError
from qamoe.evaluation import evaluate_protocols
from qamoe.fidelity import reliability_fidelity
from qamoe.models import available_models, create_model
from qamoe.training import TrainConfig, train_model

log = logging.getLogger(__name__)

_METHOD = re.compile(r"^(?P<name>[a-z_]+)(\[(?P<overrides>[^\]]*)\])?$")


@dataclass(frozen=True)
class MethodSpec:
    label: str
    model: str
    overrides: dict[str, Any] = field(default_factory=dict)

    def model_config(self, base: ModelConfig) -> ModelConfig:
        return base.replace(**self.overrides)


def parse_method(text: str) -> MethodSpec:
    """"qamoe[top_k=2,reliability_objective=clean_recon]" -> MethodSpec; values parsed as JSON, else string."""
    match = _METHOD.match(text.strip())
    if not match or match["name"] not in available_models():
        raise ConfigError(f"bad method {text!r}: use NAME or NAME[key=value,...], NAME one of {available_models()}")
    overrides: dict[str, Any] = {}
    for item in filter(None, (match["overrides"] or "").split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"bad override {item!r} in {text!r}: use key=value")
        try:
            overrides[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key.strip()] = value.strip()
    return MethodSpec(label=text.strip(), model=match["name"], overrides=overrides)


@dataclass(frozen=True)
class GridJob:
    method: MethodSpec
    seed: int
    base_config: ModelConfig
    train_config: TrainConfig
    protocols: tuple[str, ...]
    fidelity: bool = False


def run_job(job: GridJob, data: dict[str, FeatureSet], *, progress: bool = False) -> list[dict[str, Any]]:
    """Train one checkpoint (one method, one seed) and evaluate it over every protocol."""
    torch.manual_seed(job.seed)
    model = create_model(job.method.model, job.method.model_config(job.base_config))
    cfg = TrainConfig(**{**job.train_config.__dict__, "seed": job.seed})
    t0 = time.perf_counter()
    result = train_model(model, data["train"], data["valid"], cfg, progress=progress, desc=job.method.label)
    train_s = time.perf_counter() - t0
    rows = evaluate_protocols(result.model, data["test"], job.protocols, seed=job.seed)
    if job.fidelity:
        for f in reliability_fidelity(result.model, data["test"], seed=job.seed):
            rows.append({"protocol": "fidelity", "condition": f"{f['modality']}:{f['corruption']}", **f})
    n_params = sum(p.numel() for p in result.model.parameters())
    for row in rows:
        row.update(method=job.method.label, seed=job.seed, best_epoch=result.best_epoch, params=n_params,
                   train_seconds=round(train_s, 1))
    return rows


_DATA: dict[str, FeatureSet] = {}


def _worker_init(data: dict[str, FeatureSet], threads: int) -> None:
    torch.set_num_threads(threads)
    _DATA.update(data)


def _worker(job: GridJob) -> list[dict[str, Any]]:
    return run_job(job, _DATA)


def run_grid(jobs: Sequence[GridJob], data: dict[str, FeatureSet], *, workers: int = 1) -> list[dict[str, Any]]:
    """Run every job; with workers > 1, in that many processes of one torch thread each (2 cores: 2 workers)."""
    rows: list[dict[str, Any]] = []
    bar = tqdm(total=len(jobs), desc="grid", unit="run")
    if workers <= 1:
        for job in jobs:
            rows.extend(run_job(job, data, progress=True))
            bar.update()
    else:
        ctx = mp.get_context("fork")
        with ctx.Pool(workers, initializer=_worker_init, initargs=(data, 1)) as pool:
            for part in pool.imap_unordered(_worker, jobs):
                rows.extend(part)
                bar.update()
    bar.close()
    return rows
