"""Corruptions along the Continuous Reliability Spectrum: pure, seeded functions registered by name.

Every corruption has the signature `(x, mask, severity, rng) -> (x, mask)`:

- `x`: float array [..., T, D] (leading batch dims allowed, typically [N, T, D]);
- `mask`: bool [..., T], True at a valid step;
- `severity`: a float in [0, 1], or an array broadcastable to `x.shape[:-2]` (one severity per sample);
- `rng`: an explicit `numpy.random.Generator`; the global RNG is never touched.

Inputs are never modified; new arrays are returned. Each function draws the same random numbers whatever the
severity (it draws for every element and thresholds afterwards), so for one seed the steps erased at eta=0.3
are a subset of those erased at eta=0.5 and the noise pattern only scales with lambda: conditions along the
spectrum differ by severity alone (common random numbers), which keeps severity sweeps smooth.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np

from qamoe.errors import ConfigError, DataError

logger = logging.getLogger(__name__)


# `(x, mask, severity, rng, **options) -> (x, mask)`; options are keyword-only. A Callable alias rather than a
# Protocol because each corruption declares its own keyword options, which a single Protocol cannot express.
CorruptionFn: TypeAlias = Callable[..., tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class _Entry:
    fn: CorruptionFn
    takes_scale: bool  # whether `apply_condition` should pass the training-set feature std as `scale=`
    takes_center: bool  # ... and the training-set feature mean as `center=`


_REGISTRY: dict[str, _Entry] = {}


def register_corruption(name: str) -> Callable[[CorruptionFn], CorruptionFn]:
    """Register a corruption under `name`, so protocols and configs can refer to it by a string."""

    def decorator(fn: CorruptionFn) -> CorruptionFn:
        if name in _REGISTRY:
            raise ConfigError(f"a corruption named {name!r} is already registered: choose another name")
        params = inspect.signature(fn).parameters
        _REGISTRY[name] = _Entry(fn=fn, takes_scale="scale" in params, takes_center="center" in params)
        return fn

    return decorator


def get_corruption(name: str) -> CorruptionFn:
    """The corruption registered as `name`; a ConfigError lists the valid names otherwise."""
    return _entry(name).fn


def stats_kwargs(name: str, stats: tuple[np.ndarray | float, np.ndarray | float] | None) -> dict:
    """The keyword options a corruption takes from the training-set feature (mean, std): `center` and/or
    `scale`. Corruptions without them get none."""
    entry = _entry(name)
    mean, std = stats if stats is not None else (0.0, 1.0)
    out: dict = {}
    if entry.takes_scale:
        out["scale"] = std
    if entry.takes_center:
        out["center"] = mean
    return out


def available_corruptions() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


def _entry(name: str) -> _Entry:
    try:
        return _REGISTRY[name]
    except KeyError:
        valid = ", ".join(available_corruptions())
        raise ConfigError(f"unknown corruption {name!r}: use one of {valid}") from None


def _check_inputs(x: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> None:
    if not isinstance(rng, np.random.Generator):
        got = type(rng).__name__
        raise ConfigError(f"rng must be a numpy.random.Generator, got {got}: use np.random.default_rng(seed)")
    if x.ndim < 2:
        raise DataError(f"features must be [..., T, D], got shape {x.shape}")
    if mask.dtype != np.bool_ or mask.shape != x.shape[:-1]:
        raise DataError(
            f"mask must be bool {x.shape[:-1]} to match features {x.shape}, got {mask.dtype} {mask.shape}"
        )


def _severity(severity: float | np.ndarray, batch_shape: tuple[int, ...]) -> np.ndarray:
    """Validate severity and broadcast it to the batch shape (one value per sample)."""
    sev = np.asarray(severity, dtype=np.float64)
    if not np.all(np.isfinite(sev)) or np.any(sev < 0.0) or np.any(sev > 1.0):
        raise ConfigError(f"severity must lie in [0, 1], got values in [{sev.min()}, {sev.max()}]")
    try:
        return np.broadcast_to(sev, batch_shape)
    except ValueError:
        raise ConfigError(
            f"severity of shape {sev.shape} does not broadcast to the batch shape {batch_shape}:"
            " pass a float or one severity per sample"
        ) from None


def _scale(scale: float | np.ndarray, dim: int) -> np.ndarray:
    s = np.asarray(scale, dtype=np.float32)
    if s.ndim > 1 or (s.ndim == 1 and s.shape[0] not in (1, dim)):
        raise ConfigError(f"noise scale must be a float or a per-feature array [D={dim}], got {s.shape}")
    if not np.all(np.isfinite(s)) or np.any(s < 0):
        raise ConfigError("noise scale must be finite and non-negative (use the training-set feature std)")
    return s


def _center(center: float | np.ndarray, dim: int) -> np.ndarray:
    c = np.asarray(center, dtype=np.float32)
    if c.ndim > 1 or (c.ndim == 1 and c.shape[0] not in (1, dim)) or not np.all(np.isfinite(c)):
        raise ConfigError(f"noise center must be a finite float or per-feature array [D={dim}], got {c.shape}")
    return c


def _noise_inputs(
    x: np.ndarray,
    mask: np.ndarray,
    severity: float | np.ndarray,
    rng: np.random.Generator,
    scale: float | np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validated severity [batch], scale [D], standard-normal eps like x, and where noise applies."""
    _check_inputs(x, mask, rng)
    sev = _severity(severity, x.shape[:-2])
    s = _scale(scale, x.shape[-1])
    eps = rng.standard_normal(x.shape, dtype=np.float32)
    # Where severity is 0 the input is returned bit-for-bit (x + 0.0 would turn -0.0 into 0.0).
    touched = mask[..., None] & (sev > 0.0)[..., None, None]
    return sev.astype(np.float32)[..., None, None], s, eps, touched


@register_corruption("gaussian_noise")
def gaussian_noise(
    x: np.ndarray,
    mask: np.ndarray,
    severity: float | np.ndarray,
    rng: np.random.Generator,
    *,
    scale: float | np.ndarray = 1.0,
    center: float | np.ndarray = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Variance-preserving noise, the default feature-noise axis of the spectrum (docs/MODEL.md):

        x' = c + sqrt(1 - lambda) (x - c) + sqrt(lambda) * s * eps,   eps ~ N(0, 1), at valid steps only

    with c and s the training-set mean and std of each feature. lambda is the *share of noise power*: the
    feature's SNR is (1 - lambda) / lambda, its overall scale is unchanged (a noisy microphone is not louder),
    and lambda = 1 leaves pure noise -- no information, the same end point as missingness. That is what makes
    noise and missingness one continuous axis. Padding stays as it was; the mask is unchanged."""
    sev, s, eps, touched = _noise_inputs(x, mask, severity, rng, scale)
    c = _center(center, x.shape[-1])
    mixed = c + np.sqrt(1.0 - sev) * (x - c) + np.sqrt(sev) * s * eps
    return np.where(touched, mixed, x).astype(x.dtype, copy=False), mask.copy()


@register_corruption("additive_noise")
def additive_noise(
    x: np.ndarray,
    mask: np.ndarray,
    severity: float | np.ndarray,
    rng: np.random.Generator,
    *,
    scale: float | np.ndarray = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """The alternative noise formula, kept for comparison: x' = x + lambda * s * eps at valid steps.

    The signal is never attenuated, so even lambda = 1 (0 dB SNR per feature) leaves most of the information
    in sequences whose frames are redundant: this axis never reaches the missing end of the spectrum."""
    sev, s, eps, touched = _noise_inputs(x, mask, severity, rng, scale)
    return np.where(touched, x + sev * s * eps, x).astype(x.dtype, copy=False), mask.copy()


@register_corruption("random_missing")
def random_missing(
    x: np.ndarray, mask: np.ndarray, severity: float | np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Erase each valid step independently with probability `severity`: x=0 and mask=False there.

    Step-level erasure (frames for audio/vision, tokens or segments for text) as in LNLN's random-missing
    protocol; the mask tells the model what was lost, as the live runtime does when a frame or word is
    dropped."""
    _check_inputs(x, mask, rng)
    sev = _severity(severity, x.shape[:-2])
    u = rng.random(mask.shape)
    erased = mask & (u < sev[..., None])  # u lies in [0, 1): severity 1 erases every valid step
    new_x = np.where(erased[..., None], x.dtype.type(0), x)
    return new_x, mask & ~erased


@register_corruption("modality_absence")
def modality_absence(
    x: np.ndarray, mask: np.ndarray, severity: float | np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """With probability `severity` per sample the whole modality is absent: all x=0, mask all False.

    The far end of the spectrum, and what the runtime produces when a device is lost."""
    _check_inputs(x, mask, rng)
    sev = _severity(severity, x.shape[:-2])
    absent = rng.random(sev.shape) < sev
    new_x = np.where(absent[..., None, None], x.dtype.type(0), x)
    return new_x, mask & ~absent[..., None]
