"""Reading a recording back: a directory of `*.jsonl` files from `JsonlRecordWriter`, or one such file.

A torn last line (a recorder killed while writing it) is skipped and counted in `Recording.torn`; any other line
that is not a record is an error naming the file and line, since the writer never leaves one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.record.errors import RecordingReadError
from edge.record.writer import SUFFIX

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Record:
    """One received message, as recorded."""

    topic: str
    received_wall_ns: int
    received_mono_ns: int
    payload: dict[str, Any]

    def of(self, topic_suffix: str) -> bool:
        """True when the topic ends with `topic_suffix` (e.g. "sentiment")."""
        return self.topic.endswith(topic_suffix)


@dataclass
class Recording:
    """The records of a recording, in order, with the files they came from and the torn lines skipped."""

    files: list[Path]
    records: list[Record] = field(default_factory=list)
    torn: list[str] = field(default_factory=list)  # "file:line" of each torn last line skipped

    def of(self, topic_suffix: str) -> list[Record]:
        return [r for r in self.records if r.of(topic_suffix)]


def recording_files(path: Path) -> list[Path]:
    """The files of a recording in order: a directory's `*.jsonl` sorted by name, or the one file given."""
    if path.is_dir():
        files = sorted(p for p in path.glob(f"*{SUFFIX}") if p.is_file())
        if not files:
            raise RecordingReadError(
                f"{path} holds no {SUFFIX} file: is it a qamoe-record directory? (record into it with "
                "`qamoe-record DIR`)"
            )
        return files
    if path.is_file():
        return [path]
    raise RecordingReadError(f"recording {path} not found: pass a qamoe-record directory or one of its files")


def read_recording(path: Path) -> Recording:
    """Every record under `path` (see `recording_files`)."""
    files = recording_files(Path(path))
    recording = Recording(files)
    for file in files:
        for item in iter_file(file):
            if isinstance(item, Record):
                recording.records.append(item)
            else:
                recording.torn.append(item)
    if recording.torn:
        log.info("skipped %d torn last line(s): %s", len(recording.torn), ", ".join(recording.torn))
    return recording


def iter_file(path: Path) -> Iterator[Record | str]:
    """The records of one file; a torn last line is yielded as its "file:line" string instead."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RecordingReadError(f"cannot read {path}: {exc.strerror or exc}") from exc
    lines = data.split(b"\n")
    complete, last = lines[:-1], lines[-1]  # `last` is b"" when the file ends with a newline, as written
    for number, line in enumerate(complete, 1):
        yield parse_line(line, f"{path}:{number}")
    if last:
        where = f"{path}:{len(lines)}"
        try:
            yield parse_line(last, where)  # whole but for its newline
        except RecordingReadError:
            yield where


def parse_line(line: bytes, where: str) -> Record:
    """One line as a Record; RecordingReadError naming `where` otherwise."""
    try:
        value = json.loads(line)
    except ValueError as exc:
        raise RecordingReadError(f"{where}: not a JSON line ({exc}): is this a qamoe-record file?") from exc
    if not isinstance(value, dict):
        raise RecordingReadError(f"{where}: a JSON {type(value).__name__}, not a record object")
    topic, payload = value.get("topic"), value.get("payload")
    wall, mono = value.get("received_wall_ns"), value.get("received_mono_ns")
    if not (isinstance(topic, str) and isinstance(payload, dict) and isinstance(wall, int)
            and isinstance(mono, int) and not isinstance(wall, bool) and not isinstance(mono, bool)):
        raise RecordingReadError(
            f"{where}: not a record (needs topic, received_wall_ns, received_mono_ns, payload): "
            "is this a qamoe-record file?"
        )
    return Record(topic, wall, mono, payload)
