"""Flattening a recording's sentiment windows into a table: one row per window, to Parquet (pyarrow) or CSV.

The columns (`COLUMNS`, in order) are documented in docs/messages.md ("Recordings"). pyarrow is optional (the
`record` extra) and imported only when Parquet is written; CSV needs only the standard library.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge.record.errors import MissingDependencyError, RecordingReadError, RecordWriteError
from edge.record.reader import Record, read_recording
from edge.vocab import MODALITIES

log = logging.getLogger(__name__)
INSTALL_PYARROW = "pip install 'qamoe-live[record]' (or: pip install 'pyarrow>=15')"

# name -> Arrow type name ("timestamp" is microseconds, UTC); the order is the table's.
COLUMNS: dict[str, str] = {
    "source_id": "string",
    "seq": "int64",
    "valid": "bool",
    "invalid_reason": "string",
    "window_start_mono_ns": "int64",
    "window_end_mono_ns": "int64",
    "window_start_epoch_s": "float64",
    "window_end_epoch_s": "float64",
    "window_start_utc": "timestamp",
    "window_end_utc": "timestamp",
    "duration_s": "float64",
    "valence": "float64",
    "sd": "float64",
    "predictive_variance": "float64",
    "polarity": "string",
    **{f"reliability_{m}": "float64" for m in MODALITIES},
    **{f"present_{m}": "bool" for m in MODALITIES},
    "backend": "string",
    "model_id": "string",
    "transcript": "string",
    "latency_total_ms": "float64",
    "received_wall_ns": "int64",
    "received_mono_ns": "int64",
}


@dataclass(frozen=True)
class ExportResult:
    rows: int
    files: int
    torn: int
    out: Path


def _at(payload: Mapping[str, Any], *path: str) -> Any:
    """payload[path[0]][path[1]]...; None where any step is missing or not an object."""
    value: Any = payload
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _utc(epoch_s: Any) -> datetime | None:
    if not isinstance(epoch_s, int | float) or isinstance(epoch_s, bool) or not math.isfinite(epoch_s):
        return None
    return datetime.fromtimestamp(epoch_s, UTC)


def _sd(variance: Any) -> float | None:
    ok = isinstance(variance, int | float) and not isinstance(variance, bool) and variance >= 0
    return math.sqrt(variance) if ok else None


def sentiment_row(record: Record) -> dict[str, Any]:
    """One sentiment record as a row of `COLUMNS` (None where the payload lacks a value)."""
    p = record.payload
    row: dict[str, Any] = {
        "source_id": p.get("source_id"),
        "seq": p.get("seq"),
        "valid": p.get("valid"),
        "invalid_reason": p.get("invalid_reason"),
        "window_start_mono_ns": _at(p, "window", "start", "mono_ns"),
        "window_end_mono_ns": _at(p, "window", "end", "mono_ns"),
        "window_start_epoch_s": _at(p, "window", "start", "epoch_s"),
        "window_end_epoch_s": _at(p, "window", "end", "epoch_s"),
        "window_start_utc": _utc(_at(p, "window", "start", "epoch_s")),
        "window_end_utc": _utc(_at(p, "window", "end", "epoch_s")),
        "duration_s": _at(p, "window", "duration_s"),
        "valence": p.get("valence"),
        "sd": _sd(p.get("predictive_variance")),
        "predictive_variance": p.get("predictive_variance"),
        "polarity": p.get("polarity"),
        "backend": p.get("backend"),
        "model_id": _at(p, "model", "id"),
        "transcript": p.get("transcript"),
        "latency_total_ms": _at(p, "latency_ms", "total"),
        "received_wall_ns": record.received_wall_ns,
        "received_mono_ns": record.received_mono_ns,
    }
    for m in MODALITIES:
        row[f"reliability_{m}"] = _at(p, "modalities", m, "reliability")
        row[f"present_{m}"] = _at(p, "modalities", m, "present")
    return {name: row[name] for name in COLUMNS}


def sentiment_rows(records: Iterable[Record]) -> list[dict[str, Any]]:
    """The rows of every `qamoe.v1.sentiment` record, in recording order."""
    return [sentiment_row(r) for r in records if r.of("sentiment")]


def import_pyarrow() -> Any:
    try:
        import pyarrow  # optional: only Parquet needs it
    except ImportError as exc:
        raise MissingDependencyError(f"writing Parquet needs pyarrow, which is not installed: "
                                     f"{INSTALL_PYARROW}; or export CSV with --csv") from exc
    return pyarrow


def arrow_table(rows: list[dict[str, Any]]) -> Any:
    """The rows as a `pyarrow.Table` with the types of `COLUMNS` (built even when there are no rows)."""
    pa = import_pyarrow()
    types = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_(),
             "timestamp": pa.timestamp("us", tz="UTC")}
    schema = pa.schema([(name, types[kind]) for name, kind in COLUMNS.items()])
    return pa.Table.from_pylist(rows, schema=schema)


def write_parquet(rows: list[dict[str, Any]], out: Path) -> None:
    table = arrow_table(rows)
    import pyarrow.parquet as pq  # optional, as above

    try:
        pq.write_table(table, out)
    except OSError as exc:
        raise RecordWriteError(f"cannot write {out}: {exc}; choose a writable place") from exc


def write_csv(rows: list[dict[str, Any]], out: Path) -> None:
    """CSV with a header row; empty cells for nulls, times as ISO 8601."""
    try:
        with open(out, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(COLUMNS))
            w.writeheader()
            for row in rows:
                w.writerow({k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()})
    except OSError as exc:
        raise RecordWriteError(f"cannot write {out}: {exc.strerror or exc}; choose a writable place") from exc


def export(recording: Path, out: Path, *, as_csv: bool = False) -> ExportResult:
    """Write the sentiment windows of `recording` to `out` (Parquet, or CSV with `as_csv`).
    RecordingReadError when the recording has no sentiment window at all (nothing worth a file)."""
    if as_csv is False:
        import_pyarrow()  # before reading: a missing package is reported at once
    rec = read_recording(recording)
    rows = sentiment_rows(rec.records)
    if not rows:
        raise RecordingReadError(
            f"{recording}: no qamoe.v1.sentiment message among its {len(rec.records)} records: was the "
            "recorder subscribed while qamoe-live estimated?"
        )
    (write_csv if as_csv else write_parquet)(rows, out)
    log.info("wrote %d windows to %s", len(rows), out)
    return ExportResult(len(rows), len(rec.files), len(rec.torn), out)
