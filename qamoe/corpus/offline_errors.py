"""The errors of offline extraction (`qamoe.corpus.offline`, `qamoe.corpus.clip_media`), in one place so the
media readers and the window cutter share them without importing each other."""

from __future__ import annotations

from qamoe.errors import ConfigError, QAMoEError


class OfflineError(QAMoEError):
    """Base of offline extraction's errors; each message names the fix (exit 1 under `qamoe.cli.run_main`)."""


class OfflineConfigError(OfflineError, ConfigError):
    """An invalid `OfflineConfig`, or extractors that do not produce the feature spec (a ConfigError: exit
    2)."""


class ClipReadError(OfflineError):
    """A clip's file is missing, unreadable or holds nothing to extract (skip it, or repair the file)."""
