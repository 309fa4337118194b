"""Typed errors of the build. Each carries the exit code `tools/build_engine.py` maps it to."""

from __future__ import annotations

from qamoe.errors import QAMoEError


class BuildError(QAMoEError):
    """Base class of every error the engine build raises on purpose."""

    exit_code = 1


class BuildConfigError(BuildError, ValueError):
    """A build option is wrong (an unknown stage name, say)."""

    exit_code = 2


class AssetFetchError(BuildError):
    """A pinned package could not be obtained (no network, index down, version withdrawn)."""

    exit_code = 3


class AssetIntegrityError(BuildError):
    """A file's sha256 does not match its pin, or a wheel lacks an expected member."""

    exit_code = 4


class ConversionError(BuildError):
    """Converting a model to ONNX failed, or the converted model does not match its reference."""

    exit_code = 5


class ParityError(ConversionError):
    """A converted model differs from its reference by more than the tolerance."""
