"""Evaluation protocols: named lists of conditions, each a chain of corruptions per modality.

One checkpoint is evaluated under every condition of a protocol (One-Checkpoint-for-All). The protocols cover
the discrete cases earlier work reports (whole modalities missing) and sweeps along the continuous spectrum
(feature noise lambda, LNLN-style random missing eta, and their joint grid).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from qamoe.data.featureset import FeatureSet
from qamoe.errors import ConfigError
from qamoe.modality import MODALITIES, Modality
from qamoe.spectrum.corruptions import get_corruption, stats_kwargs

logger = logging.getLogger(__name__)

# The lambda and eta grid 0.0, 0.1, ..., 0.9, rounded so names and params read "0.3", not 0.30000000000000004.
SEVERITY_GRID: tuple[float, ...] = tuple(round(i / 10, 1) for i in range(10))


@dataclass(frozen=True)
class ModalityCorruption:
    """One registered corruption at a fixed severity."""

    name: str
    severity: float

    def __post_init__(self) -> None:
        get_corruption(self.name)  # raises ConfigError naming the valid corruptions
        if not 0.0 <= self.severity <= 1.0:
            raise ConfigError(f"severity of {self.name!r} must lie in [0, 1], got {self.severity}")


@dataclass(frozen=True)
class Condition:
    """One evaluation condition: which corruptions hit which modality, in order.

    `params` are the condition's coordinates for result tables ({"lambda": 0.3, "eta": 0.5} or {"kept":
    "text"}); a modality missing from `per_modality` is left clean."""

    protocol: str
    name: str
    params: dict[str, float | str]
    per_modality: dict[Modality, tuple[ModalityCorruption, ...]]

    def __post_init__(self) -> None:
        unknown = [m for m in self.per_modality if m not in MODALITIES]
        if unknown:
            raise ConfigError(f"condition {self.name!r} names unknown modalities {unknown}: key by Modality")


def _clean() -> list[Condition]:
    return [Condition("clean", "clean", {}, {m: () for m in MODALITIES})]


def _missing_patterns() -> list[Condition]:
    """The 7 non-empty subsets of modalities kept; every other modality is absent."""
    absent = (ModalityCorruption("modality_absence", 1.0),)
    conditions = []
    for size in range(1, len(MODALITIES) + 1):
        for kept in itertools.combinations(MODALITIES, size):
            label = "+".join(m.value for m in kept)
            per_modality = {m: (() if m in kept else absent) for m in MODALITIES}
            conditions.append(Condition("missing_patterns", f"kept={label}", {"kept": label}, per_modality))
    return conditions


def _every_modality(chain: tuple[ModalityCorruption, ...]) -> dict[Modality, tuple[ModalityCorruption, ...]]:
    return {m: chain for m in MODALITIES}


def _noise_grid(protocol: str, corruption: str) -> list[Condition]:
    return [
        Condition(
            protocol,
            f"lambda={lam}",
            {"lambda": lam},
            _every_modality((ModalityCorruption(corruption, lam),)),
        )
        for lam in SEVERITY_GRID
    ]


def _noise() -> list[Condition]:
    return _noise_grid("noise", "gaussian_noise")


def _additive_noise() -> list[Condition]:
    """The alternative (non-attenuating) noise formula on the same grid, for comparison."""
    return _noise_grid("additive_noise", "additive_noise")


def _random_missing() -> list[Condition]:
    return [
        Condition(
            "random_missing",
            f"eta={eta}",
            {"eta": eta},
            _every_modality((ModalityCorruption("random_missing", eta),)),
        )
        for eta in SEVERITY_GRID
    ]


def _joint() -> list[Condition]:
    """The lambda x eta grid: noise first, then missing, so erased steps read as zeros rather than noise."""
    conditions = []
    for lam, eta in itertools.product(SEVERITY_GRID, SEVERITY_GRID):
        chain = (ModalityCorruption("gaussian_noise", lam), ModalityCorruption("random_missing", eta))
        conditions.append(
            Condition("joint", f"lambda={lam},eta={eta}", {"lambda": lam, "eta": eta}, _every_modality(chain))
        )
    return conditions


_PROTOCOLS: dict[str, Callable[[], list[Condition]]] = {
    "clean": _clean,
    "missing_patterns": _missing_patterns,
    "noise": _noise,
    "random_missing": _random_missing,
    "joint": _joint,
    "additive_noise": _additive_noise,
}


def available_protocols() -> tuple[str, ...]:
    return tuple(_PROTOCOLS)


def get_protocol(name: str) -> list[Condition]:
    """The conditions of protocol `name` (a fresh list each call, so callers may filter it)."""
    try:
        build = _PROTOCOLS[name]
    except KeyError:
        raise ConfigError(f"unknown protocol {name!r}: use one of {', '.join(_PROTOCOLS)}") from None
    return build()


def apply_condition(
    fs: FeatureSet,
    condition: Condition,
    rng: np.random.Generator,
    noise_stats: Mapping[Modality, tuple[np.ndarray | float, np.ndarray | float]] | None = None,
) -> FeatureSet:
    """Apply the condition's corruption chain to each modality and return a new FeatureSet.

    Each modality draws from its own child generator spawned from `rng`, so one modality's random numbers do
    not depend on what happened to another: "kept=text" and "kept=text+audio" see the same text.
    `noise_stats[m]` is the training-set feature (mean, std) of modality m, as `feature_stats` returns it;
    noise corruptions take their centre and scale from it (default (0, 1))."""
    if not isinstance(rng, np.random.Generator):
        raise ConfigError("rng must be a numpy.random.Generator: pass numpy.random.default_rng(seed)")
    stats = noise_stats or {}
    child_rngs = rng.spawn(len(MODALITIES))
    feats, masks = {}, {}
    for m, child in zip(MODALITIES, child_rngs, strict=True):
        x, k = fs.feats[m], fs.masks[m]
        for step in condition.per_modality.get(m, ()):
            fn = get_corruption(step.name)
            kwargs = stats_kwargs(step.name, stats.get(m))
            x, k = fn(x, k, step.severity, child, **kwargs)
        feats[m], masks[m] = x, k
    logger.debug("applied %s/%s to %d samples", condition.protocol, condition.name, len(fs))
    return fs.replace(feats=feats, masks=masks)
