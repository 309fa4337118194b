"""Typed errors of the capture sources. Every message names the fix (the explicit URI form, an existing
device, or how to run without the modality)."""

from __future__ import annotations

from edge.errors import SourceFault, UsageError


class SourceError(SourceFault, RuntimeError):
    """Base of the errors of a source that cannot be opened or read (exit 3)."""


class SourceConfigError(UsageError, ValueError):
    """An invalid source configuration value (`VideoSourceConfig`, `AudioSourceConfig`, `WorkerConfig`): a
    usage error (exit 2), so not a `SourceError`; nothing catches `SourceError` around a config's
    construction."""


class SourceUriError(UsageError, ValueError):
    """A `--camera` / `--mic` / `--video-file` string that is malformed or ambiguous: a usage error (exit 2),
    so not a `SourceError`: URIs are parsed before any source opens, outside every `except SourceError`."""


class SourceNotFoundError(SourceError):
    """The named device, file or stream does not exist; the message lists what does."""


class SourceOpenError(SourceError):
    """The source exists but cannot be opened (permissions, codec, busy device, unreachable stream)."""


class SourceBackendError(SourceError):
    """A capture library is missing (PortAudio for sounddevice, PyAV for media files)."""
