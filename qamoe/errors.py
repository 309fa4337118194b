"""Typed errors at the package's boundaries. Messages say what to do, not only what went wrong."""


class QAMoEError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(QAMoEError, ValueError):
    """A configuration value is out of range, unknown or inconsistent."""


class DataError(QAMoEError):
    """A data file is missing, malformed, or does not match the expected schema or feature spec."""


class CheckpointError(QAMoEError):
    """A checkpoint is missing, truncated, corrupt, or does not match its config."""
