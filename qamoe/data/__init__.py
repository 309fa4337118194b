"""Data: the in-memory feature set, MMSA pickles, the versioned shard format, and the synthetic benchmark."""

from qamoe.data.featureset import FeatureSet

__all__ = ["FeatureSet"]
