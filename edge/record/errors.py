"""The errors of recording, exporting and plotting, each in one category of `edge.errors` (its exit code)."""

from __future__ import annotations

from edge.errors import OutputFault, SourceFault, UsageError


class RecordConfigError(UsageError, ValueError):
    """Exit 2: a recording option that cannot work (a rotation size below the minimum, a negative duration)."""


class RecordWriteError(OutputFault):
    """Exit 6: the recording directory cannot be created or written (read-only, disk full, a name taken)."""


class RecordingReadError(SourceFault):
    """Exit 3: a recording that cannot be read: missing, holding no `*.jsonl` file, or a line that is not a
    record (other than a torn last line, which a killed recorder may leave and readers skip and count)."""


class MissingDependencyError(OutputFault):
    """Exit 6: the output needs an optional package that is not installed (pyarrow for Parquet, matplotlib
    for plots); the message says which extra to install."""
