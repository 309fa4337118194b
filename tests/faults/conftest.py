"""Fixtures of the fault tests: one engines directory and one set of loaded models for the whole session (each
test gets them reset), a GRID talking-face clip, a private virtual microphone, and a recorder of the observed
detection/recovery times and message losses, printed at the end of the run (the numbers in docs/RELIABILITY.md).
Set QAMOE_FAULTS_REPORT=path.json to also write them to a file."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.live_fixtures import GRID, make_live_engines

CLIP = GRID / "id2_vcd_swwp2s.mpg"  # "set white with p two soon", 3 s, 25 fps, 360x288
_ROWS: list[dict] = []


@pytest.fixture(scope="session")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_live_engines(tmp_path_factory.mktemp("faults"))


@pytest.fixture(scope="session")
def comps(engines: Path):  # type: ignore[no-untyped-def]
    from edge.pipeline.build import PipelineConfig, build

    components = build(PipelineConfig(engines_dir=engines))
    yield components
    components.close()


@pytest.fixture(scope="session")
def clip() -> Path:
    if not CLIP.exists():
        pytest.skip(f"{CLIP} not found: the GRID clips live in ../shared/media/grid")
    return CLIP


class Record:
    """One row of the faults table: call `record(detect_s=..., recover_s=..., lost=..., note=...)`."""

    def __init__(self, case: str) -> None:
        self.case = case

    def __call__(self, **numbers: float | str | None) -> None:
        _ROWS.append({"case": self.case, **numbers})


@pytest.fixture()
def record(request: pytest.FixtureRequest) -> Record:
    return Record(request.node.name)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # type: ignore[no-untyped-def]
    if not _ROWS:
        return
    terminalreporter.section("faults: observed numbers")
    for row in _ROWS:
        rest = ", ".join(f"{k}={_fmt(v)}" for k, v in row.items() if k != "case")
        terminalreporter.write_line(f"{row['case']}: {rest}")
    path = os.environ.get("QAMOE_FAULTS_REPORT")
    if path:
        Path(path).write_text(json.dumps(_ROWS, indent=1))


def _fmt(v: object) -> str:
    return f"{v:.2f}" if isinstance(v, float) else str(v)


@pytest.fixture(scope="module")
def mic_env() -> Iterator[object]:
    """A private PulseAudio virtual microphone (its own daemon, so a test may kill and restart it)."""
    from tests.faults.pulse_ctl import private_mic_or_skip

    with private_mic_or_skip() as mic:
        yield mic
