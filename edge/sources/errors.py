"""Typed errors of the capture sources. Every message names the fix (the explicit URI form, an existing
device, or how to run without the modality)."""

from __future__ import annotations


class SourceError(RuntimeError):
    """Base of the capture sources' errors."""


class SourceConfigError(SourceError, ValueError):
    """An invalid source configuration value (`VideoSourceConfig`, `AudioSourceConfig`, `WorkerConfig`)."""


class SourceUriError(SourceError, ValueError):
    """A `--camera` / `--mic` / `--video-file` string that is malformed or ambiguous."""


class SourceNotFoundError(SourceError):
    """The named device, file or stream does not exist; the message lists what does."""


class SourceOpenError(SourceError):
    """The source exists but cannot be opened (permissions, codec, busy device, unreachable stream)."""


class SourceBackendError(SourceError):
    """A capture library is missing (PortAudio for sounddevice, PyAV for media files)."""
