"""QA-MoE building blocks, one concept per module."""

from qamoe.layers.encoder import TemporalEncoder
from qamoe.layers.experts import GLUExperts
from qamoe.layers.head import DualHead
from qamoe.layers.norm import InputNorm
from qamoe.layers.prior import PriorFallback
from qamoe.layers.reliability import GaussianReliability
from qamoe.layers.router import QualityAwareRouter

__all__ = [
    "DualHead",
    "GLUExperts",
    "GaussianReliability",
    "InputNorm",
    "PriorFallback",
    "QualityAwareRouter",
    "TemporalEncoder",
]
