"""Inference backends behind one interface (`Backend`): ONNX Runtime (`ort`) and TensorRT (`trt`).

Importing this package imports neither onnxruntime nor tensorrt; `open_backend` loads the one it selects.
"""

from edge.backends.base import BACKEND_CHOICES, Backend, BackendConfig, IOSpec, TensorInfo
from edge.backends.errors import (
    BackendError,
    BackendUnavailableError,
    EngineIntegrityError,
    EngineMismatchError,
    IOContractError,
)

__all__ = [
    "BACKEND_CHOICES",
    "Backend",
    "BackendConfig",
    "BackendError",
    "BackendUnavailableError",
    "EngineIntegrityError",
    "EngineMismatchError",
    "IOContractError",
    "IOSpec",
    "TensorInfo",
]
