"""Training with the Continuous Reliability Spectrum: one checkpoint for every condition.

Each batch is corrupted afresh (per sample and per modality: noise lambda ~ U(0, 1), missing rate eta ~ U(0, 1),
whole-modality absence with probability p_absent, a share p_clean left clean; qamoe.spectrum.sampler). Model
selection uses the validation split only: the mean MAE over the clean validation set and one fixed, seeded
spectrum-corrupted copy of it, over every row (`select_by="rows"`) or as the mean of each source's MAE
(`select_by="source"`: the source is the id's prefix before "/", so 200 RAVDESS/EmoDB rows weigh as much as
1,800 MOSEI rows)."""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from qamoe.batching import batches, to_tensors
from qamoe.config import from_dict_strict
from qamoe.data.featureset import FeatureSet, TrainRows, feature_stats
from qamoe.errors import ConfigError
from qamoe.modality import MODALITIES, Modality
from qamoe.models import MultimodalModel
from qamoe.spectrum import SpectrumConfig, sample_corruption

log = logging.getLogger(__name__)


def _default_weights() -> dict[str, float]:
    return {"task_l1": 1.0, "task_nll": 0.1, "reliability": 0.5, "unimodal_l1": 0.5, "balance": 0.0}


# How the validation MAE is averaged for model selection: over every row, or per source then over sources.
SELECT_BY = ("rows", "source")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    seed: int = 0
    spectrum: SpectrumConfig = field(default_factory=SpectrumConfig)
    loss_weights: Mapping[str, float] = field(default_factory=_default_weights)
    threads: int = 0  # 0: leave torch's default
    select_by: str = "rows"  # SELECT_BY

    def __post_init__(self) -> None:
        if isinstance(self.spectrum, Mapping):
            object.__setattr__(self, "spectrum", from_dict_strict(SpectrumConfig, self.spectrum))
        for name in ("epochs", "batch_size"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if self.select_by not in SELECT_BY:
            raise ConfigError(f"select_by {self.select_by!r} unknown: use one of {SELECT_BY}")
        unknown = set(self.loss_weights) - set(_default_weights())
        if unknown:
            raise ConfigError(f"unknown loss weight(s) {sorted(unknown)}: valid are {sorted(_default_weights())}")
        object.__setattr__(self, "loss_weights", {**_default_weights(), **dict(self.loss_weights)})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        return from_dict_strict(cls, d)


@dataclass
class TrainResult:
    model: MultimodalModel
    best_epoch: int
    best_score: float
    history: list[dict[str, float]]


TWIN_SUFFIX = "#raw"


def noise_stats(model: MultimodalModel) -> dict[Modality, tuple[np.ndarray, np.ndarray]]:
    """Centre and unit of feature noise: each feature's training-set (mean, std), as the model's input norm holds."""
    return {m: (model.norms[str(m)].mean.numpy().copy(), model.norms[str(m)].std.numpy().copy()) for m in MODALITIES}


def twin_reference(fs: TrainRows, suffix: str = TWIN_SUFFIX) -> np.ndarray:
    """Row of each sample's clean target in `fs`: a "<id>#raw" twin (the same sample through a raw-media
    corruption, docs/CORPUS.md) points at "<id>" when `fs` holds it, every other sample at itself."""
    pos = {str(k): i for i, k in enumerate(fs.ids)}
    ref = np.arange(len(fs))
    for i, k in enumerate(map(str, fs.ids)):
        if k.endswith(suffix):
            ref[i] = pos.get(k[: -len(suffix)], i)
    return ref


def train_model(
    model: MultimodalModel,
    train_set: TrainRows,
    valid_set: FeatureSet,
    config: TrainConfig,
    *,
    progress: bool = True,
    desc: str = "train",
    reference: np.ndarray | None = None,
) -> TrainResult:
    """Fit `model` in place (input statistics from `train_set`), keep the best epoch by validation score.

    `reference[i]`: the row of `train_set` whose features are sample i's clean targets (the reliability
    objective's reconstruction target; `twin_reference`); default: every sample is its own clean target."""
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng([config.seed, 17])
    model.set_input_stats(feature_stats(train_set))
    scales = noise_stats(model)
    valid_noisy, _ = sample_corruption(valid_set, config.spectrum, np.random.default_rng([config.seed, 99]), scales)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train_set) / config.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=config.lr, total_steps=config.epochs * steps_per_epoch, pct_start=0.1
    )
    best = (math.inf, -1, copy.deepcopy(model.state_dict()))
    history: list[dict[str, float]] = []
    bar = tqdm(range(config.epochs), desc=desc, disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        train_loss = _epoch(model, train_set, config, rng, scales, opt, sched, reference)
        score = 0.5 * (
            validation_mae(model, valid_set, by=config.select_by)
            + validation_mae(model, valid_noisy, by=config.select_by)
        )
        history.append({"epoch": epoch, "train_loss": train_loss, "valid_score": score})
        bar.set_postfix(loss=f"{train_loss:.3f}", valid=f"{score:.3f}")
        if score < best[0]:
            best = (score, epoch, copy.deepcopy(model.state_dict()))
    model.load_state_dict(best[2])
    model.eval()
    log.info("%s: best epoch %d, validation score (mean MAE clean/spectrum) %.4f", desc, best[1], best[0])
    return TrainResult(model=model, best_epoch=best[1], best_score=best[0], history=history)


def _epoch(
    model: MultimodalModel,
    train_set: TrainRows,
    config: TrainConfig,
    rng: np.random.Generator,
    scales: Mapping[Modality, np.ndarray],
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    reference: np.ndarray | None = None,
) -> float:
    total, count = 0.0, 0
    for idx in batches(len(train_set), config.batch_size, rng.permutation(len(train_set))):
        clean = train_set.subset(idx)
        noisy, _ = sample_corruption(clean, config.spectrum, rng, scales)
        feats, masks, labels = to_tensors(noisy)
        out = model(feats, masks)
        kwargs = {}
        if model.needs_clean_targets:
            target = clean if reference is None else train_set.subset(reference[idx])
            kwargs["clean_feats"], kwargs["clean_masks"], _ = to_tensors(target)
        terms = model.loss_terms(out, labels, **kwargs)
        loss = sum(config.loss_weights[k] * v for k, v in terms.items())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        opt.step()
        sched.step()
        total += float(loss.detach()) * len(idx)
        count += len(idx)
    return total / max(count, 1)


@torch.no_grad()
def validation_mae(model: MultimodalModel, fs: FeatureSet, batch_size: int = 2048, *, by: str = "rows") -> float:
    """Mean absolute error over `fs`; by="source": the mean over sources (id prefix before "/") of each one's."""
    model.eval()
    errs = []
    for idx in batches(len(fs), batch_size):
        feats, masks, labels = to_tensors(fs.subset(idx))
        errs.append(torch.abs(model(feats, masks).valence - labels).numpy())
    model.train()
    err = np.concatenate(errs)
    if by == "rows":
        return float(err.mean())
    sources = np.array([str(i).split("/", 1)[0] for i in fs.ids])
    return float(np.mean([err[sources == s].mean() for s in np.unique(sources)]))
