"""The root of every error qamoe-live raises on purpose, its five categories, and the exit codes they carry.

Every error class under `edge/` derives from exactly one category below (tests/unit/test_exit_codes.py checks it
against the README's table of exit codes), so the CLI's exit code is a lookup, `exc.exit_code`, never an
ordered list of isinstance checks. A leaf class keeps a built-in base (`ValueError`, `RuntimeError`) where
callers catch it by that base.

Where a family's members fall into different categories (a `--camera` string that does not parse is a usage
error, a camera that does not open is a source fault), the odd ones out derive from their category, not from
the family's base: `SourceUriError` is a `UsageError`, not a `SourceError`. Catch sites list them by name.

The core model package (`qamoe`) cannot import this module: its errors have their own root, `QAMoEError`, and
their own codes (`qamoe.cli.EXIT_CODES`).
"""

from __future__ import annotations

from typing import ClassVar

EXIT_OK = 0
EXIT_UNEXPECTED = 1  # an error no category claims: a bug, reported with its traceback
EXIT_USAGE = 2
EXIT_SOURCE = 3
EXIT_MODEL = 4
EXIT_PUBLISH = 5
EXIT_OUTPUT = 6


class QamoeLiveError(Exception):
    """Base of every error qamoe-live raises on purpose. Raise a category's subclass, never this: the root
    carries no exit code (None: the CLI treats it as unexpected)."""

    exit_code: ClassVar[int | None] = None


class UsageError(QamoeLiveError):
    """Exit 2: bad arguments or configuration. A flag value or combination, a source URI that does not parse,
    an out-of-range value of a frozen config dataclass, CURVE key files, a bad `--out` name. The fix is in
    what the user (or the calling code) passed, not in the machine."""

    exit_code = EXIT_USAGE


class SourceFault(QamoeLiveError):
    """Exit 3: a camera, microphone or media file that cannot be opened or decoded (missing, busy, truncated,
    no frames or samples, audio outside 8-384 kHz or 1-8 channels, a capture library missing), and samples
    the extractors cannot take from it."""

    exit_code = EXIT_SOURCE


class ModelFault(QamoeLiveError):
    """Exit 4: no usable model or engine. The manifest, an engine or artifact (missing, altered, wrong I/O
    names or shapes, another feature spec, a plan for another GPU or TensorRT version), a backend runtime, the
    feature extractors' models (Whisper, MiniLM, BlazeFace, Silero VAD, the compiled DSP), and the text and
    visual extractors' settings, which no flag sets: they go with the engines. The fix is usually
    `python tools/build_engine.py`."""

    exit_code = EXIT_MODEL


class PublishFault(QamoeLiveError):
    """Exit 5: the publisher cannot be set up or cannot send (the port is taken, a socket is closed, a message
    cannot be built)."""

    exit_code = EXIT_PUBLISH


class OutputFault(QamoeLiveError):
    """Exit 6: the `--out` annotated video cannot be written (its directory is missing or read-only, the disk
    is full, the encoder fails)."""

    exit_code = EXIT_OUTPUT


CATEGORIES: tuple[type[QamoeLiveError], ...] = (
    UsageError, SourceFault, ModelFault, PublishFault, OutputFault
)
