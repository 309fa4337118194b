"""`RecordConfig`: where and how `JsonlRecordWriter` writes a recording (rotation, the gap index)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge.record.errors import RecordConfigError

MIN_ROTATE_BYTES = 1024  # below this a single health message (~1.5 kB) would get a file of its own
DEFAULT_ROTATE_BYTES = 64 * 1024 * 1024
DEFAULT_ROTATE_S = 3600.0
DEFAULT_GAPS_EVERY_S = 1.0


@dataclass(frozen=True)
class RecordConfig:
    """directory: where the files go (created if missing); rotate_bytes / rotate_s: a new file once the
    current one would grow past this size or has covered this many seconds of reception time (None: never);
    gaps_every_s: the gap index is rewritten at most this often while nothing changes but counts (a new gap
    rewrites it at once); fsync_on_close: fsync each file as it is closed (rotation, end), so that a closed
    file survives a power loss too, not only a killed process."""

    directory: Path
    rotate_bytes: int | None = DEFAULT_ROTATE_BYTES
    rotate_s: float | None = DEFAULT_ROTATE_S
    gaps_every_s: float = DEFAULT_GAPS_EVERY_S
    fsync_on_close: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "directory", Path(self.directory))
        if self.rotate_bytes is not None and self.rotate_bytes < MIN_ROTATE_BYTES:
            raise RecordConfigError(
                f"rotate_bytes={self.rotate_bytes}: choose at least {MIN_ROTATE_BYTES} bytes "
                "(or no size rotation)"
            )
        if self.rotate_s is not None and not self.rotate_s > 0:
            raise RecordConfigError(f"rotate_s={self.rotate_s}: choose a positive number of seconds")
        if not self.gaps_every_s >= 0:
            raise RecordConfigError(f"gaps_every_s={self.gaps_every_s}: choose 0 (every message) or more")
