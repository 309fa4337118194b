"""The Continuous Reliability Spectrum: corruptions, evaluation protocols, training-time draws; numpy only.

Missingness and quality degradation are one axis of reliability here: feature noise of severity lambda,
step-level random missing at rate eta, and whole-modality absence at its far end.
"""

from qamoe.spectrum.corruptions import (
    CorruptionFn,
    additive_noise,
    available_corruptions,
    gaussian_noise,
    get_corruption,
    modality_absence,
    random_missing,
    register_corruption,
    stats_kwargs,
)
from qamoe.spectrum.protocols import (
    SEVERITY_GRID,
    Condition,
    ModalityCorruption,
    apply_condition,
    available_protocols,
    get_protocol,
)
from qamoe.spectrum.sampler import SpectrumConfig, sample_corruption

__all__ = [
    "SEVERITY_GRID",
    "Condition",
    "CorruptionFn",
    "ModalityCorruption",
    "SpectrumConfig",
    "additive_noise",
    "apply_condition",
    "available_corruptions",
    "available_protocols",
    "gaussian_noise",
    "get_corruption",
    "get_protocol",
    "modality_absence",
    "random_missing",
    "register_corruption",
    "sample_corruption",
    "stats_kwargs",
]
