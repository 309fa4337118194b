"""`JsonlRecordWriter`: every message received, one JSON object per line, in files that rotate by size and time.

    with JsonlRecordWriter(RecordConfig(Path("rec"))) as writer:
        writer.write(topic, payload, received_wall_ns=time.time_ns(), received_mono_ns=time.monotonic_ns())

A line is `{"topic", "received_wall_ns", "received_mono_ns", "payload"}` (docs/messages.md, "Recordings").
Whatever feeds it (a ZeroMQ subscriber, a NATS consumer) calls `write`; it holds no thread of its own.

Durability: each line goes to the OS in one write and is flushed at once, so a killed recorder (SIGKILL) loses
at most the line it was writing, which then stays torn at the end of its file and readers skip and count it.
Files are never reopened or appended to after they are closed, so earlier files are never touched; each is
fsynced as it is closed. Files are named `<run>-<part>.jsonl`, where `<run>` is the UTC time the writer started
(`20260101T000000.000000Z`) and `<part>` counts from 00001: names sort in recording order, across runs too.
The gap index (`gaps.json`, `edge.record.gaps`) is rewritten whole through a temporary file and `os.replace`,
so a reader sees the old index or the new one, never half of one.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from edge.record.config import RecordConfig
from edge.record.errors import RecordWriteError
from edge.record.gaps import GapIndex

log = logging.getLogger(__name__)
GAPS_FILE = "gaps.json"
GAPS_FORMAT = "qamoe-record/gaps.v1"
SUFFIX = ".jsonl"
NS = 1_000_000_000
EVENT_SAVE_MIN_NS = NS // 10


def run_id_now(wall_ns: int | None = None) -> str:
    """The UTC time as a run id that sorts as it reads: 20260101T000000.000000Z."""
    ns = time.time_ns() if wall_ns is None else wall_ns
    return datetime.fromtimestamp(ns / NS, UTC).strftime("%Y%m%dT%H%M%S.%fZ")


def encode_record(topic: str, payload: Mapping[str, Any], received_wall_ns: int, received_mono_ns: int) -> bytes:
    """One record as one line of ASCII JSON (ValueError for NaN/Infinity or values JSON cannot hold)."""
    record = {
        "topic": topic,
        "received_wall_ns": received_wall_ns,
        "received_mono_ns": received_mono_ns,
        "payload": payload,
    }
    return (json.dumps(record, ensure_ascii=True, separators=(",", ":"), allow_nan=False) + "\n").encode("ascii")


class JsonlRecordWriter:
    """Writes records into `config.directory`; `close()` (or the `with` block) ends the current file and saves
    the gap index. Safe to call from several threads (one lock), though one feeding thread is the usual case."""

    def __init__(self, config: RecordConfig, *, run_id: str | None = None) -> None:
        self.config = config
        self.run_id = run_id or run_id_now()
        self.files: list[Path] = []
        self.written = 0
        self.skipped = 0  # payloads JSON cannot hold (NaN/Infinity from a non-conforming publisher)
        self.gaps = GapIndex()
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None
        self._file_bytes = 0
        self._file_started_mono: int | None = None
        self._gaps_saved_mono: int | None = None
        self._closed = False
        self._started_wall_ns = time.time_ns()
        try:
            config.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RecordWriteError(
                f"cannot create the recording directory {config.directory}: {exc.strerror or exc}; "
                "choose a writable directory"
            ) from exc
        self._other_runs = _load_other_runs(config.directory / GAPS_FILE, self.run_id)
        self._save_gaps()  # fails now, not at the first message, when the directory cannot be written

    @property
    def current_path(self) -> Path | None:
        """The file being written, or None before the first record and after a rotation's close."""
        return self.files[-1] if self._file is not None else None

    def write(
        self, topic: str, payload: Mapping[str, Any], *, received_wall_ns: int, received_mono_ns: int
    ) -> bool:
        """Append one record; False (counted in `skipped`, logged) when the payload cannot be JSON.
        Raises RecordWriteError when the file cannot be written, RecordWriteError after `close()` too."""
        try:
            line = encode_record(topic, payload, received_wall_ns, received_mono_ns)
        except (TypeError, ValueError) as exc:
            with self._lock:
                self.skipped += 1
            log.warning("skipped a %s message that JSON cannot hold: %s", topic, exc)
            return False
        with self._lock:
            if self._closed:
                raise RecordWriteError("the recording writer is closed: create a new one to record again")
            self._rotate_if_due(len(line), received_mono_ns)
            self._append(line, received_mono_ns)
            self.written += 1
            event = self.gaps.observe(topic, payload, received_wall_ns)
            if self._gaps_due(received_mono_ns, event):
                self._save_gaps(received_mono_ns)
        return True

    def close(self) -> None:
        """Close the current file (fsynced) and save the gap index; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._close_file()
            self._save_gaps(closed=True)

    # ------------------------------------------------------------------------------------------- files
    def _rotate_if_due(self, size: int, mono_ns: int) -> None:
        if self._file is None:
            self._open_next(mono_ns)
            return
        cfg = self.config
        too_big = cfg.rotate_bytes is not None and self._file_bytes + size > cfg.rotate_bytes
        started = self._file_started_mono if self._file_started_mono is not None else mono_ns
        too_old = cfg.rotate_s is not None and mono_ns - started >= cfg.rotate_s * NS
        if (too_big and self._file_bytes > 0) or too_old:
            self._close_file()
            self._open_next(mono_ns)

    def _open_next(self, mono_ns: int) -> None:
        path = self.config.directory / f"{self.run_id}-{len(self.files) + 1:05d}{SUFFIX}"
        try:
            self._file = open(path, "xb")  # noqa: SIM115 - held open across calls, closed by _close_file
        except OSError as exc:
            raise RecordWriteError(
                f"cannot create {path}: {exc.strerror or exc}; choose a writable directory "
                "(two recorders cannot share a run id)"
            ) from exc
        self.files.append(path)
        self._file_bytes = 0
        self._file_started_mono = mono_ns
        log.info("recording into %s", path)

    def _append(self, line: bytes, mono_ns: int) -> None:
        assert self._file is not None
        try:
            self._file.write(line)
            self._file.flush()  # to the OS now: a killed process loses nothing it has returned from
        except OSError as exc:
            raise RecordWriteError(
                f"writing {self.files[-1]} failed: {exc.strerror or exc}; free some space or record elsewhere"
            ) from exc
        self._file_bytes += len(line)

    def _close_file(self) -> None:
        if self._file is None:
            return
        f, self._file = self._file, None
        try:
            f.flush()
            if self.config.fsync_on_close:
                os.fsync(f.fileno())
        except OSError as exc:
            raise RecordWriteError(f"closing {self.files[-1]} failed: {exc.strerror or exc}") from exc
        finally:
            f.close()

    # ------------------------------------------------------------------------------------------- gap index
    def _gaps_due(self, mono_ns: int, event: bool) -> bool:
        """A new gap, restart or stream is saved at once, unless the index was saved within the last 0.1 s
        (a stream with a gap per message must not cost an fsync per message); counts every gaps_every_s."""
        if self._gaps_saved_mono is None:
            return True
        age = mono_ns - self._gaps_saved_mono
        return age >= self.config.gaps_every_s * NS or (event and age >= EVENT_SAVE_MIN_NS)

    def _save_gaps(self, mono_ns: int | None = None, *, closed: bool = False) -> None:
        run = {
            "files": [p.name for p in self.files],
            "started_wall_ns": self._started_wall_ns,
            "updated_wall_ns": time.time_ns(),
            "closed": closed,
            "written": self.written,
            "skipped": self.skipped,
            **self.gaps.to_json(),
        }
        index = {"format": GAPS_FORMAT, "runs": {**self._other_runs, self.run_id: run}}
        write_json_atomically(self.config.directory / GAPS_FILE, index)
        self._gaps_saved_mono = mono_ns  # None (saved outside write): the next write saves again

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def write_json_atomically(path: Path, value: Any) -> None:
    """Write `value` as JSON to `path` through a temporary file beside it and `os.replace`."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="ascii") as f:
            json.dump(value, f, indent=1, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise RecordWriteError(
            f"cannot write {path}: {exc.strerror or exc}; choose a writable directory with free space"
        ) from exc


def _load_other_runs(path: Path, run_id: str) -> dict[str, Any]:
    """The runs an earlier recorder left in this directory's gap index (kept as they are)."""
    try:
        index = json.loads(path.read_text(encoding="ascii"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("%s cannot be read (%s): starting a new gap index; the recorded files are unchanged",
                    path, exc)
        return {}
    runs = index.get("runs") if isinstance(index, dict) else None
    if not isinstance(runs, dict):
        log.warning("%s is not a qamoe-record gap index: starting a new one", path)
        return {}
    return {k: v for k, v in runs.items() if k != run_id}
