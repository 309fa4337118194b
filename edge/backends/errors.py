"""Typed errors of the inference backends. Every message names the fix."""

from __future__ import annotations

from edge.errors import ModelFault

REBUILD = "run `python tools/build_engine.py --checkpoint DIR`"
USE_ORT = "pass `--backend ort`"


class BackendError(ModelFault):
    """A backend cannot be opened or cannot run the given inputs (exit 4)."""


class BackendUnavailableError(BackendError):
    """The requested backend's runtime (onnxruntime provider, TensorRT, cuda-python, a GPU) is not present."""


class EngineMismatchError(BackendError):
    """An engine file was built for another GPU, TensorRT version or model than the one at hand."""


class EngineIntegrityError(BackendError):
    """An engine file's bytes do not match its manifest entry (sha256 or size): it is never loaded."""


class IOContractError(BackendError):
    """A model's input/output names are not the QA-MoE contract the runtime feeds and reads."""
