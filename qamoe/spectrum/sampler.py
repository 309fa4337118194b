"""Training-time draws along the Continuous Reliability Spectrum.

Instead of a few fixed corruption ratios, every sample and modality gets its own noise severity lambda and
missing rate eta, drawn uniformly, plus an occasional whole-modality absence; a fraction of samples stays
clean so the model keeps its clean-data accuracy (LNLN keeps half; we default to a quarter, an [open] choice
to ablate). The drawn severities are returned for analysis only: the model never sees them, since QA-MoE
estimates reliability without quality labels.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from qamoe.data.featureset import FeatureSet
from qamoe.errors import ConfigError
from qamoe.modality import MODALITIES, Modality
from qamoe.spectrum.corruptions import get_corruption, modality_absence, random_missing, stats_kwargs

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpectrumConfig:
    """p_clean: probability a sample is left entirely clean (every modality); noise_max / missing_max: upper
    ends of the uniform lambda / eta draws; p_absent: per-modality probability the whole modality is
    dropped; noise: the registered noise corruption ("gaussian_noise", variance-preserving, or
    "additive_noise")."""

    p_clean: float = 0.25
    noise_max: float = 1.0
    missing_max: float = 1.0
    p_absent: float = 0.1
    noise: str = "gaussian_noise"

    def __post_init__(self) -> None:
        if self.noise not in ("gaussian_noise", "additive_noise"):
            raise ConfigError(f"SpectrumConfig.noise must be 'gaussian_noise' or 'additive_noise', got {self.noise!r}")
        for field in ("p_clean", "noise_max", "missing_max", "p_absent"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"SpectrumConfig.{field} must be a number in [0, 1], got {value!r}")
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ConfigError(f"SpectrumConfig.{field} must lie in [0, 1], got {value}")


def sample_corruption(
    fs: FeatureSet,
    config: SpectrumConfig,
    rng: np.random.Generator,
    noise_stats: Mapping[Modality, tuple[np.ndarray | float, np.ndarray | float]] | None = None,
) -> tuple[FeatureSet, dict[Modality, dict[str, np.ndarray]]]:
    """Corrupt every sample at its own point of the spectrum; vectorised over samples.

    Per modality: noise at lambda ~ U(0, noise_max), then random missing at eta ~ U(0, missing_max), then
    absence with probability p_absent; samples chosen clean (probability p_clean) get lambda = eta = 0 and no
    absence in every modality. Returns the corrupted set and, per modality, {"lambda": [N], "eta": [N],
    "absent": [N] bool}. Independent absences can drop all three modalities of a sample (probability
    p_absent**3): the model's prior fallback must cope with that, as the live runtime can lose every device at
    once."""
    if not isinstance(rng, np.random.Generator):
        raise ConfigError("rng must be a numpy.random.Generator: pass numpy.random.default_rng(seed)")
    n = len(fs)
    stats = noise_stats or {}
    noise = get_corruption(config.noise)
    clean = rng.random(n) < config.p_clean
    feats, masks, drawn = {}, {}, {}
    for m, child in zip(MODALITIES, rng.spawn(len(MODALITIES)), strict=True):
        lam = np.where(clean, 0.0, child.uniform(0.0, config.noise_max, n))
        eta = np.where(clean, 0.0, child.uniform(0.0, config.missing_max, n))
        absent = ~clean & (child.random(n) < config.p_absent)
        x, k = noise(fs.feats[m], fs.masks[m], lam, child, **stats_kwargs(config.noise, stats.get(m)))
        x, k = random_missing(x, k, eta, child)
        x, k = modality_absence(x, k, absent.astype(np.float64), child)  # severity 0 or 1: a certain outcome
        feats[m], masks[m] = x, k
        drawn[m] = {"lambda": lam, "eta": eta, "absent": absent}
    logger.debug("spectrum draw: %d samples, %d clean", n, int(clean.sum()))
    return fs.replace(feats=feats, masks=masks), drawn
