"""QA-MoE: Quality-Aware Mixture of Experts for robust multimodal sentiment analysis.

The science half of qamoe-live: model, Continuous Reliability Spectrum, data, metrics and training.
It needs torch; the runtime (`edge`) never imports this package and meets it only through artifacts
(ONNX file, feature spec, engine manifest).
"""

from qamoe.modality import MODALITIES, Modality

__all__ = ["MODALITIES", "Modality"]
__version__ = "0.1.0"
