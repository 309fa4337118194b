"""Recording what a qamoe-live publisher sends, and reading, exporting and plotting it afterwards.

    qamoe-record rec/                        # every message, as JSON Lines, rotated, with a gap index
    qamoe-record export rec/ windows.parquet # one row per sentiment window (pyarrow)
    qamoe-plot rec/ -o timeline.png          # valence, reliabilities, transcript, device events (matplotlib)

The file format: docs/messages.md ("Recordings"). `JsonlRecordWriter` takes records from any feed (a ZeroMQ
`Subscriber` here, `record_stream`); `read_recording` reads them back. Not to be confused with
`edge.publish.recorder.Recorder`, the in-memory recorder of the tests and benchmarks.
"""

from edge.record.config import RecordConfig
from edge.record.errors import MissingDependencyError, RecordConfigError, RecordingReadError, RecordWriteError
from edge.record.export import COLUMNS, export, sentiment_rows
from edge.record.gaps import GapIndex
from edge.record.reader import Record, Recording, read_recording
from edge.record.session import BackgroundRecording, RecordStats, record_stream
from edge.record.writer import GAPS_FILE, JsonlRecordWriter

__all__ = [
    "COLUMNS",
    "GAPS_FILE",
    "BackgroundRecording",
    "GapIndex",
    "JsonlRecordWriter",
    "MissingDependencyError",
    "Record",
    "RecordConfig",
    "RecordConfigError",
    "RecordStats",
    "RecordWriteError",
    "Recording",
    "RecordingReadError",
    "export",
    "read_recording",
    "record_stream",
    "sentiment_rows",
]
