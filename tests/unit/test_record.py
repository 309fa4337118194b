"""The recording writer and reader (edge.record): lines, rotation by size and time, file order, the gap index,
durability against a torn last line, and the errors a bad recording or option gives. In-process, real files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edge.publish.examples import example_health, example_sentiment, example_transcript
from edge.publish.wire import SCHEMA_VERSION, Message
from edge.record import (
    GAPS_FILE,
    GapIndex,
    JsonlRecordWriter,
    RecordConfig,
    RecordConfigError,
    RecordingReadError,
    RecordWriteError,
    read_recording,
)

NS = 1_000_000_000
WALL0 = 1_767_225_600 * NS
MONO0 = 5_000 * NS


def payload(message: Message, seq: int, source: str = "cam0") -> dict[str, Any]:
    """A message as a subscriber receives it: the envelope the publisher adds, then the body."""
    sent = {"mono_ns": MONO0, "epoch_s": WALL0 / NS, "iso": "2026-01-01T00:00:00.000Z"}
    body = {**message.body, "source_id": source}
    return {"schema_version": SCHEMA_VERSION, "topic": message.topic, "seq": seq, "sent": sent, **body}


def write_stream(writer: JsonlRecordWriter, seqs: list[int], *, step_s: float = 0.5, source: str = "cam0") -> None:
    for i, seq in enumerate(seqs):
        msg = example_sentiment(valence=0.1 * i)
        t = int(i * step_s * NS)
        writer.write(msg.topic, payload(msg, seq, source), received_wall_ns=WALL0 + t, received_mono_ns=MONO0 + t)


def test_each_message_is_one_json_line_read_back_in_order(tmp_path: Path) -> None:
    with JsonlRecordWriter(RecordConfig(tmp_path)) as writer:
        for i, msg in enumerate([example_sentiment(), example_transcript(), example_health()]):
            writer.write(msg.topic, payload(msg, 0), received_wall_ns=WALL0 + i, received_mono_ns=MONO0 + i)
    (file,) = writer.files
    lines = file.read_bytes().split(b"\n")
    assert len(lines) == 4 and lines[-1] == b""
    first = json.loads(lines[0])
    assert list(first) == ["topic", "received_wall_ns", "received_mono_ns", "payload"]
    assert first["topic"] == "qamoe.v1.sentiment" and first["received_wall_ns"] == WALL0
    rec = read_recording(tmp_path)
    assert [r.topic for r in rec.records] == ["qamoe.v1.sentiment", "qamoe.v1.transcript", "qamoe.v1.health"]
    assert [r.received_mono_ns for r in rec.records] == [MONO0, MONO0 + 1, MONO0 + 2]
    assert rec.records[0].payload == payload(example_sentiment(), 0) and rec.torn == []


def test_rotates_by_size_and_names_sort_in_order(tmp_path: Path) -> None:
    with JsonlRecordWriter(RecordConfig(tmp_path, rotate_bytes=4096, rotate_s=None)) as writer:
        write_stream(writer, list(range(30)))
    assert len(writer.files) >= 5
    assert sorted(tmp_path.glob("*.jsonl")) == writer.files  # the names sort as they were written
    assert all(p.stat().st_size <= 4096 for p in writer.files)
    seqs = [r.payload["seq"] for r in read_recording(tmp_path).records]
    assert seqs == list(range(30))


def test_rotates_by_reception_time(tmp_path: Path) -> None:
    with JsonlRecordWriter(RecordConfig(tmp_path, rotate_bytes=None, rotate_s=2.0)) as writer:
        write_stream(writer, list(range(10)), step_s=0.5)  # received over 4.5 s: files of 0-1.5, 2-3.5, 4-4.5
    counts = [len(p.read_bytes().splitlines()) for p in writer.files]
    assert counts == [4, 4, 2]


def test_a_second_run_in_the_same_directory_sorts_after_the_first(tmp_path: Path) -> None:
    with JsonlRecordWriter(RecordConfig(tmp_path), run_id="20260101T000000.000000Z") as first:
        write_stream(first, [0, 1])
    with JsonlRecordWriter(RecordConfig(tmp_path), run_id="20260101T000005.000000Z") as second:
        write_stream(second, [0, 1, 2])
    assert sorted(tmp_path.glob("*.jsonl")) == first.files + second.files
    index = json.loads((tmp_path / GAPS_FILE).read_text())
    assert set(index["runs"]) == {first.run_id, second.run_id}  # the earlier run's index is kept
    assert [r.payload["seq"] for r in read_recording(tmp_path).records] == [0, 1, 0, 1, 2]


def test_gap_index_counts_gaps_and_restarts_per_source_and_topic(tmp_path: Path) -> None:
    with JsonlRecordWriter(RecordConfig(tmp_path)) as writer:
        write_stream(writer, [3, 4, 7, 8, 12, 0, 1], source="cam0")  # joined at 3; lost 5-6 and 9-11; restart
        write_stream(writer, [0, 1, 2], source="cam1")
        h = example_health()
        writer.write(h.topic, payload(h, 9), received_wall_ns=WALL0, received_mono_ns=MONO0)
    index = json.loads((tmp_path / GAPS_FILE).read_text())
    assert index["format"] == "qamoe-record/gaps.v1"
    run = index["runs"][writer.run_id]
    assert run["closed"] is True and run["written"] == 11 and run["missing"] == 5
    assert run["files"] == [p.name for p in writer.files]
    streams = {(s["source_id"], s["topic"]): s for s in run["streams"]}
    cam0 = streams[("cam0", "qamoe.v1.sentiment")]
    assert (cam0["first_seq"], cam0["last_seq"], cam0["received"], cam0["missing"]) == (3, 1, 7, 5)
    assert [(g["after_seq"], g["next_seq"], g["missing"]) for g in cam0["gaps"]] == [(4, 7, 2), (8, 12, 3)]
    assert [(r["from_seq"], r["to_seq"]) for r in cam0["restarts"]] == [(12, 0)]
    assert streams[("cam1", "qamoe.v1.sentiment")]["missing"] == 0
    assert streams[("cam0", "qamoe.v1.health")]["first_seq"] == 9
    # The index rebuilt from the files read back is the same as the one the writer kept.
    rebuilt = GapIndex.of((r.topic, r.payload, r.received_wall_ns) for r in read_recording(tmp_path).records)
    assert rebuilt.to_json()["streams"] == run["streams"]


def test_gap_index_is_replaced_atomically_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    with JsonlRecordWriter(RecordConfig(tmp_path, gaps_every_s=0.0)) as writer:
        write_stream(writer, list(range(5)))
        during = json.loads((tmp_path / GAPS_FILE).read_text())["runs"][writer.run_id]
        assert during["closed"] is False and during["written"] == 5
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".jsonl")) == [GAPS_FILE]


def test_a_torn_last_line_is_skipped_and_counted_earlier_files_intact(tmp_path: Path) -> None:
    with JsonlRecordWriter(RecordConfig(tmp_path, rotate_bytes=4096, rotate_s=None)) as writer:
        write_stream(writer, list(range(12)))
    last = writer.files[-1]
    data = last.read_bytes()
    last.write_bytes(data[: len(data) - 40])  # what a SIGKILL in the middle of the last write leaves
    rec = read_recording(tmp_path)
    assert rec.torn == [f"{last}:{len(data.splitlines())}"]
    assert [r.payload["seq"] for r in rec.records] == list(range(11))


def test_a_last_line_missing_only_its_newline_is_kept(tmp_path: Path) -> None:
    with JsonlRecordWriter(RecordConfig(tmp_path)) as writer:
        write_stream(writer, [0, 1])
    f = writer.files[0]
    f.write_bytes(f.read_bytes().rstrip(b"\n"))
    rec = read_recording(f)  # one file given directly
    assert [r.payload["seq"] for r in rec.records] == [0, 1] and rec.torn == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not json\n{}\n", "not a JSON line"),
        (b"[1, 2]\n", "not a record object"),
        (b'{"topic": "qamoe.v1.health", "payload": {}}\n', "needs topic, received_wall_ns"),
    ],
)
def test_a_bad_line_inside_a_file_is_an_error_naming_file_and_line(
    tmp_path: Path, content: bytes, message: str
) -> None:
    bad = tmp_path / "x.jsonl"
    bad.write_bytes(content)
    with pytest.raises(RecordingReadError, match=message) as err:
        read_recording(tmp_path)
    assert f"{bad}:1" in str(err.value) and err.value.exit_code == 3


def test_missing_or_empty_recordings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(RecordingReadError, match="not found"):
        read_recording(tmp_path / "nope")
    with pytest.raises(RecordingReadError, match="holds no .jsonl file"):
        read_recording(tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"rotate_bytes": 10}, "at least 1024"), ({"rotate_s": 0.0}, "positive"), ({"gaps_every_s": -1.0}, "0")],
)
def test_bad_options_are_usage_errors(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(RecordConfigError, match=message) as err:
        RecordConfig(tmp_path, **kwargs)
    assert err.value.exit_code == 2


def test_a_directory_path_that_is_a_file_fails_with_exit_6(tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.write_text("x")
    with pytest.raises(RecordWriteError, match="cannot create the recording directory") as err:
        JsonlRecordWriter(RecordConfig(taken))
    assert err.value.exit_code == 6


def test_payloads_json_cannot_hold_are_skipped_and_counted(tmp_path: Path) -> None:
    with JsonlRecordWriter(RecordConfig(tmp_path)) as writer:
        assert not writer.write("qamoe.v1.health", {"seq": 0, "x": float("nan")},
                                received_wall_ns=WALL0, received_mono_ns=MONO0)
        write_stream(writer, [0])
    assert writer.skipped == 1 and writer.written == 1
    with pytest.raises(RecordWriteError, match="closed"):
        write_stream(writer, [1])
