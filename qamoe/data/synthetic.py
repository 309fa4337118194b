"""A synthetic benchmark where the truth is known.

A latent sentiment s ~ N(0, 1.5^2) clipped to [-3, 3] is the label. Each modality observes it differently, so that
fusion matters and no single modality suffices:

  text   v_T = s + N(0, 0.6^2)            sign and intensity, moderately noisy
  audio  v_A = |s| + 0.25 s + N(0, 0.4^2)  mostly intensity (arousal), weak sign
  vision v_V = s + N(0, 0.9^2)             sign and intensity, noisier

A modality's frames are  x_t = 1[t informative] * phi(v) A_m  +  z B_m  +  e_t,  with phi(v) = [v/3, tanh v,
sin 1.3v, (v/3)^2], A_m, B_m fixed random matrices (the "sensor"), z ~ N(0, I_4) a per-sample nuisance (speaker
identity, lighting), e_t ~ N(0, 0.3^2) frame noise, and 60% of frames informative. Valid lengths are drawn in
[T/2, T]. Everything is seeded: the sensors by `seed`, each split by `seed` and the split name.

The Continuous Reliability Spectrum is applied on top (qamoe.spectrum), exactly as on real features.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from qamoe.data.featureset import FeatureSet
from qamoe.errors import ConfigError
from qamoe.modality import MODALITIES, Modality

_PHI_DIM = 4
_NUISANCE_DIM = 4
_SPLIT_OFFSETS = {"train": 1, "valid": 2, "test": 3}


def _default_dims() -> dict[Modality, int]:
    return {Modality.TEXT: 32, Modality.AUDIO: 16, Modality.VISION: 24}


def _default_lens() -> dict[Modality, int]:
    return {Modality.TEXT: 12, Modality.AUDIO: 40, Modality.VISION: 30}


@dataclass(frozen=True)
class SyntheticConfig:
    n_train: int = 6000
    n_valid: int = 1000
    n_test: int = 2000
    dims: dict[Modality, int] = field(default_factory=_default_dims)
    seq_lens: dict[Modality, int] = field(default_factory=_default_lens)
    informative_frac: float = 0.6
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.n_train, self.n_valid, self.n_test) <= 0:
            raise ConfigError("synthetic split sizes must be positive")
        if not 0.0 < self.informative_frac <= 1.0:
            raise ConfigError(f"informative_frac must be in (0, 1], got {self.informative_frac}")


def _views(s: np.ndarray, rng: np.random.Generator) -> dict[Modality, np.ndarray]:
    n = len(s)
    return {
        Modality.TEXT: s + rng.normal(0.0, 0.6, n),
        Modality.AUDIO: np.abs(s) + 0.25 * s + rng.normal(0.0, 0.4, n),
        Modality.VISION: s + rng.normal(0.0, 0.9, n),
    }


def _phi(v: np.ndarray) -> np.ndarray:
    return np.stack([v / 3.0, np.tanh(v), np.sin(1.3 * v), (v / 3.0) ** 2], axis=-1)


def _sensors(cfg: SyntheticConfig) -> dict[Modality, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng([cfg.seed, 0])
    out = {}
    for m in MODALITIES:
        d = cfg.dims[m]
        out[m] = (rng.normal(0, 1.0, (_PHI_DIM, d)), rng.normal(0, 0.5, (_NUISANCE_DIM, d)))
    return out


def _modality(
    v: np.ndarray, sensor: tuple[np.ndarray, np.ndarray], t_len: int, frac: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    n = len(v)
    a, b = sensor
    signal = _phi(v) @ a  # [N, D]
    nuisance = rng.normal(0, 1, (n, _NUISANCE_DIM)) @ b  # [N, D]
    informative = rng.random((n, t_len)) < frac
    x = informative[..., None] * signal[:, None, :] + nuisance[:, None, :]
    x = x + rng.normal(0, 0.3, x.shape)
    lengths = rng.integers((t_len + 1) // 2, t_len + 1, n)
    mask = np.arange(t_len)[None, :] < lengths[:, None]
    return (x * mask[..., None]).astype(np.float32), mask


def make_split(cfg: SyntheticConfig, split: str) -> FeatureSet:
    """One split of the benchmark; the same (cfg, split) always gives the same data."""
    if split not in _SPLIT_OFFSETS:
        raise ConfigError(f"unknown split {split!r}: use one of {sorted(_SPLIT_OFFSETS)}")
    n = {"train": cfg.n_train, "valid": cfg.n_valid, "test": cfg.n_test}[split]
    rng = np.random.default_rng([cfg.seed, _SPLIT_OFFSETS[split]])
    s = np.clip(rng.normal(0.0, 1.5, n), -3.0, 3.0)
    views = _views(s, rng)
    sensors = _sensors(cfg)
    feats, masks = {}, {}
    for m in MODALITIES:
        feats[m], masks[m] = _modality(views[m], sensors[m], cfg.seq_lens[m], cfg.informative_frac, rng)
    ids = np.array([f"synthetic/{split}/{i:06d}" for i in range(n)])
    return FeatureSet(feats=feats, masks=masks, labels=s.astype(np.float32), ids=ids)


def make_benchmark(cfg: SyntheticConfig | None = None) -> dict[str, FeatureSet]:
    cfg = cfg or SyntheticConfig()
    return {split: make_split(cfg, split) for split in _SPLIT_OFFSETS}
