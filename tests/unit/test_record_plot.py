"""`qamoe-plot` on a recording, golden shape (not pixels): the figure has the three expected axes and the expected
series, built from a recording written by the real writer; and the command's output and errors."""

from __future__ import annotations

import copy
import math
import sys
from pathlib import Path

import pytest

from edge.cli import plot as cli
from edge.publish.examples import example_health, example_sentiment, example_transcript
from edge.record import JsonlRecordWriter, RecordConfig, read_recording
from edge.record.plot import AXES, POLARITY_COLOURS, build_figure
from edge.record.timeline import build_timeline
from tests.unit.test_record import MONO0, NS, WALL0, payload

VALENCES = [-1.5, -1.0, 0.0, 0.2, 1.0, 2.0]
HOSTILE = "$x^2$ \x1b[31mred"


def make_recording(directory: Path) -> Path:
    """Six windows 0.5 s apart (vision absent in windows 2-3), words, and the camera going absent and back."""
    with JsonlRecordWriter(RecordConfig(directory)) as w:
        for i, v in enumerate(VALENCES):
            t = MONO0 + i * NS // 2
            p = payload(example_sentiment(valence=v, start_ns=t - 2 * NS), i)
            p["modalities"]["vision"]["present"] = i not in (2, 3)
            w.write("qamoe.v1.sentiment", p, received_wall_ns=WALL0 + t, received_mono_ns=t)
            if i == 1:
                words = payload(example_transcript(words=("bin", "blue", HOSTILE), start_ns=t - NS), 0)
                w.write("qamoe.v1.transcript", words, received_wall_ns=WALL0 + t, received_mono_ns=t)
            h = payload(example_health(), i)
            h["sent"]["mono_ns"] = t
            h["devices"]["camera"] = {"state": "absent" if i in (2, 3) else "ok", "name": "cam", "detail": "gone"}
            w.write("qamoe.v1.health", h, received_wall_ns=WALL0 + t, received_mono_ns=t)
    return directory


def _by_gid(ax, kind: str) -> dict:
    return {a.get_gid(): a for a in getattr(ax, kind) if a.get_gid()}


def test_figure_has_the_expected_axes_and_series(tmp_path: Path) -> None:
    tl = build_timeline(read_recording(make_recording(tmp_path / "rec")))
    fig = build_figure(tl)
    assert type(fig.canvas).__name__ == "FigureCanvasAgg"
    valence_ax, rel_ax, events_ax = fig.axes
    assert [ax.get_gid() for ax in fig.axes] == list(AXES)
    # valence: the line, and its band as one quad per step coloured by the newer window's polarity
    line = _by_gid(valence_ax, "lines")["valence"]
    assert list(line.get_ydata()) == pytest.approx(VALENCES)
    assert list(line.get_xdata()) == pytest.approx([0.5, 1.0, 1.5, 2.0, 2.5, 3.0])  # 0 = a hop before the first
    band = _by_gid(valence_ax, "collections")["sd band"]
    assert len(band.get_paths()) == len(VALENCES) - 1
    expected = ["negative", "neutral", "neutral", "positive", "positive"]
    from matplotlib.colors import to_rgb

    assert [tuple(c[:3]) for c in band.get_facecolors()] == [to_rgb(POLARITY_COLOURS[p]) for p in expected]
    # reliability: one line per modality, gaps where absent, and the absent stretch hatched
    lines = _by_gid(rel_ax, "lines")
    assert set(lines) == {"reliability text", "reliability audio", "reliability vision"}
    vision = list(lines["reliability vision"].get_ydata())
    assert [math.isnan(y) for y in vision] == [False, False, True, True, False, False]  # NaN where absent
    bars = _by_gid(rel_ax, "collections")
    assert len(bars["absent vision"].get_paths()) == 1 and len(bars["absent text"].get_paths()) == 0
    assert bars["absent vision"].get_hatch() == "///"
    # events: the words (escaped, no mathtext) and the camera's states
    labels = [t.get_text() for t in events_ax.texts if t.get_gid() == "word"]
    assert labels[:2] == ["bin", "blue"] and labels[2] == "$x^2$ \\x1b[31mred"
    assert all(not t.get_parse_math() for t in events_ax.texts)
    devices = [g for g in _by_gid(events_ax, "collections") if g.startswith("device")]
    assert sorted(devices) == ["device camera absent", "device camera ok", "device microphone ok"]
    assert [round(p.get_extents().x0, 2) for p in _by_gid(events_ax, "collections")["device camera absent"]
            .get_paths()] == [1.5]  # absent from the third window's health report on
    assert [t.get_text() for t in events_ax.get_yticklabels()] == ["words", "camera", "microphone"]


def test_command_writes_a_png(tmp_path: Path, capsys) -> None:
    rec = make_recording(tmp_path / "rec")
    assert cli.main([str(rec), "-o", str(tmp_path / "t.png")]) == 0
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["-o", "{tmp}/t.png"], 2, "give a RECORDING or --replay"),
        (["{tmp}/rec", "--replay", "{tmp}/rec", "-o", "{tmp}/t.png"], 2, "one of them"),
        (["--replay", "{tmp}/nope.mp4", "-o", "{tmp}/t.png"], 2, "no such file"),
        (["{tmp}/rec", "--record-dir", "{tmp}/r", "-o", "{tmp}/t.png"], 2, "go with --replay"),
        (["{tmp}/missing", "-o", "{tmp}/t.png"], 3, "not found"),
        (["{tmp}/rec", "--source", "cam9", "-o", "{tmp}/t.png"], 3, "no sentiment window of source 'cam9'"),
        (["{tmp}/rec", "-o", "{tmp}/no/dir/t.png"], 6, "cannot write"),
    ],
)
def test_bad_input_one_line_and_exit_code(tmp_path: Path, capsys, argv: list[str], code: int,
                                          message: str) -> None:
    make_recording(tmp_path / "rec")
    assert cli.main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith("qamoe-plot: "), err


def test_without_matplotlib_it_says_how_to_install_it(tmp_path: Path, capsys, monkeypatch) -> None:
    rec = make_recording(tmp_path / "rec")
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # what an interpreter without it sees
    assert cli.main([str(rec), "-o", str(tmp_path / "t.png")]) == 6
    assert "pip install 'matplotlib>=3.8'" in capsys.readouterr().err
    assert not (tmp_path / "t.png").exists()


def test_a_window_without_numbers_is_a_gap_not_a_crash(tmp_path: Path) -> None:
    rec = make_recording(tmp_path / "rec")
    recording = read_recording(rec)
    broken = copy.deepcopy(recording.records[0].payload)
    broken.update(valence=None, polarity=None, predictive_variance=None, valid=False)
    recording.records[0] = type(recording.records[0])("qamoe.v1.sentiment", 0, MONO0, broken)
    fig = build_figure(build_timeline(recording))
    band = _by_gid(fig.axes[0], "collections")["sd band"]
    assert len(band.get_paths()) == len(VALENCES) - 2  # the step from the empty window is not drawn
