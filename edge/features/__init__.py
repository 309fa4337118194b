"""Per-modality feature extractors for the live runtime and the training tools (numpy + onnxruntime only)."""

from edge.features.audio import AudioFeatureExtractor, AudioFrames
from edge.features.audio_config import AUDIO_FEATURE_NAMES, AudioFeatureConfig
from edge.features.audio_quality import AudioInputError, to_mono_16k

__all__ = [
    "AUDIO_FEATURE_NAMES",
    "AudioFeatureConfig",
    "AudioFeatureExtractor",
    "AudioFrames",
    "AudioInputError",
    "to_mono_16k",
]
