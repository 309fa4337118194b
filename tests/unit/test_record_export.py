"""`qamoe-record export` and the `qamoe-record` command in-process: the table's columns and values (read back
with pyarrow), CSV, and the errors and exit codes of bad input. Real files, real pyarrow."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from edge.cli import record as cli
from edge.publish.examples import example_health, example_sentiment, example_transcript
from edge.record import COLUMNS, JsonlRecordWriter, RecordConfig, export
from tests.unit.test_record import MONO0, NS, WALL0, payload


def make_recording(directory: Path, n: int = 6) -> Path:
    with JsonlRecordWriter(RecordConfig(directory)) as writer:
        for i in range(n):
            t = i * NS // 2
            msg = example_sentiment(valence=-1.5 + 0.5 * i, transcript=f"w{i}", start_ns=MONO0 + t)
            writer.write(msg.topic, payload(msg, i), received_wall_ns=WALL0 + t, received_mono_ns=MONO0 + t)
            for other in (example_transcript(), example_health()):
                writer.write(other.topic, payload(other, i), received_wall_ns=WALL0 + t, received_mono_ns=MONO0 + t)
    return directory


def test_parquet_has_one_row_per_window_with_the_documented_columns(tmp_path: Path) -> None:
    rec = make_recording(tmp_path / "rec")
    result = export(rec, tmp_path / "w.parquet")
    assert (result.rows, result.files, result.torn) == (6, 1, 0)
    table = pq.read_table(tmp_path / "w.parquet")
    assert table.column_names == list(COLUMNS)
    assert str(table.schema.field("window_start_utc").type) == "timestamp[us, tz=UTC]"
    rows = table.to_pylist()
    assert [r["seq"] for r in rows] == list(range(6))
    assert [r["valence"] for r in rows] == pytest.approx([-1.5, -1.0, -0.5, 0.0, 0.5, 1.0])
    assert [r["polarity"] for r in rows] == ["negative", "negative", "negative", "neutral", "positive",
                                             "positive"]
    first = rows[0]
    assert first["sd"] == pytest.approx(math.sqrt(0.31)) and first["predictive_variance"] == pytest.approx(0.31)
    assert (first["reliability_text"], first["reliability_audio"], first["reliability_vision"]) == \
        pytest.approx((0.82, 0.64, 0.05))
    assert (first["present_text"], first["present_audio"], first["present_vision"]) == (True, True, False)
    assert first["backend"] == "ort-cpu" and first["model_id"] == "qamoe_small" and first["transcript"] == "w0"
    assert first["source_id"] == "cam0" and first["valid"] is True and first["invalid_reason"] is None
    assert first["window_start_mono_ns"] == MONO0 and first["window_end_mono_ns"] == MONO0 + 2 * NS
    assert first["window_start_epoch_s"] == pytest.approx(1_767_225_600.0)
    assert first["window_start_utc"].isoformat() == "2026-01-01T00:00:00+00:00"
    assert first["duration_s"] == pytest.approx(2.0) and first["latency_total_ms"] == pytest.approx(471.5)
    assert rows[1]["received_wall_ns"] == WALL0 + NS // 2


def test_csv_export_needs_no_pyarrow_and_has_the_same_columns(tmp_path: Path) -> None:
    rec = make_recording(tmp_path / "rec", n=3)
    export(rec, tmp_path / "w.csv", as_csv=True)
    with open(tmp_path / "w.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(COLUMNS) and len(rows) == 3
    assert rows[2]["valence"] == "-0.5" and rows[0]["invalid_reason"] == ""
    assert rows[0]["window_start_utc"] == "2026-01-01T00:00:00+00:00"
    assert cli.main(["export", str(rec), str(tmp_path / "by_suffix.CSV")]) == 0  # the suffix says CSV too
    assert (tmp_path / "by_suffix.CSV").read_text().splitlines()[0] == ",".join(COLUMNS)


def test_cli_records_nothing_when_told_the_duration_and_exports(tmp_path: Path, capsys) -> None:
    # No publisher: the recorder waits for --duration, exits 0, and leaves the gap index but no empty file.
    from edge.publish.recorder import free_endpoint

    code = cli.main([str(tmp_path / "rec"), "--endpoint", free_endpoint(), "--duration", "0.3"])
    assert code == 0
    assert [p.name for p in (tmp_path / "rec").iterdir()] == ["gaps.json"]
    assert "0 messages in 0 file(s)" in capsys.readouterr().err
    rec = make_recording(tmp_path / "rec2")
    assert cli.main(["export", str(rec), str(tmp_path / "out.parquet")]) == 0
    assert "6 windows from 1 file(s)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["{tmp}/rec", "--rotate-mb", "-1"], 2, "--rotate-mb"),
        (["{tmp}/rec", "--rotate-mb", "0.0001"], 2, "at least 1024"),
        (["{tmp}/rec", "--duration", "0"], 2, "--duration"),
        (["{tmp}/rec", "--endpoint", "tcp://nowhere"], 2, "tcp://nowhere"),
        (["{tmp}/rec", "--curve-server-key", "{tmp}/k.key"], 2, "CURVE needs both"),
        (["{tmp}/file/rec", "--duration", "1"], 6, "cannot create the recording directory"),
        (["export", "{tmp}/missing", "{tmp}/o.parquet"], 3, "not found"),
        (["export", "{tmp}/empty", "{tmp}/o.parquet"], 3, "holds no .jsonl"),
        (["export", "{tmp}/health_only", "{tmp}/o.parquet"], 3, "no qamoe.v1.sentiment message"),
        (["export", "{tmp}/rec_ok", "{tmp}/no/dir/o.parquet"], 6, "cannot write"),
        (["export", "{tmp}/rec_ok", "{tmp}/no/dir/o.csv", "--csv"], 6, "cannot write"),
    ],
)
def test_cli_bad_input_one_line_and_exit_code(tmp_path: Path, capsys, argv: list[str], code: int,
                                              message: str) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "empty").mkdir()
    with JsonlRecordWriter(RecordConfig(tmp_path / "health_only")) as w:
        h = example_health()
        w.write(h.topic, payload(h, 0), received_wall_ns=WALL0, received_mono_ns=MONO0)
    make_recording(tmp_path / "rec_ok", n=2)
    assert cli.main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith("qamoe-record: "), err


def test_export_without_pyarrow_says_how_to_install_it(tmp_path: Path, capsys, monkeypatch) -> None:
    import sys

    rec = make_recording(tmp_path / "rec", n=1)
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # what an interpreter without pyarrow sees on import
    assert cli.main(["export", str(rec), str(tmp_path / "o.parquet")]) == 6
    err = capsys.readouterr().err
    assert "pip install 'qamoe-live[record]'" in err and "--csv" in err
    assert not (tmp_path / "o.parquet").exists()
