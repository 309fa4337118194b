"""Data: the in-memory feature set, MMSA pickles, the versioned shard format, and the synthetic benchmark."""

from qamoe.data.featureset import FeatureSet, feature_stats
from qamoe.data.gather import concat_featuresets, read_shards
from qamoe.data.mmsa import DATASET_DIMS, load_mmsa_pickle
from qamoe.data.shards import SHARD_FORMAT, SHARD_VERSION, read_shard, read_shard_meta, write_shard

__all__ = [
    "DATASET_DIMS",
    "SHARD_FORMAT",
    "SHARD_VERSION",
    "FeatureSet",
    "concat_featuresets",
    "feature_stats",
    "load_mmsa_pickle",
    "read_shard",
    "read_shard_meta",
    "read_shards",
    "write_shard",
]
