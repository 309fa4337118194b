"""Bad input: a catalogue of wrong inputs to the real command-line tools, each run as a real subprocess.

Every case states the documented exit code and a needle of the one clear error line that names the fix, and
the test checks, for every case: that exit code; exactly that one problem line on stderr (INFO/DEBUG log lines
and an argparse usage block aside; native library noise counts as a problem line); no "Traceback" at the
default log level; nothing half-written (every watched file and folder - the engines dir, the case's working
folder, an output folder - is byte-for-byte as it was before). Inputs that are supported after all (an 8 kHz,
a 6-channel, an 8-bit, a float64 WAV; the readable half of a truncated file; silence) run to the end and are
checked on what a real ZeroMQ subscriber receives.

The bad inputs are made in tmp_path from real files: the GRID clips of ../shared/media/grid (cases that need
them skip without), the random-init QA-MoE engine and checkpoint of tests.support.live_fixtures (through the real
build path), truncated and byte-flipped copies, wrong headers, a plan keyed for another GPU. TensorRT cannot
run here, so the plan cases put stand-ins for `tensorrt` and `cuda-python` on PYTHONPATH
(tests/support/bad_input_stubs): a GPU that "exists" and a runtime whose deserializer leaves a marker file, which
shows whether a plan ever reached it.

The cases live in tests/support/bad_input_live_cases.py (qamoe-live flags and media), bad_input_engine_cases.py (engines
and tools/build_engine.py) and bad_input_tool_cases.py (tools/extract_features.py, qamoe-tap, qamoe-keys); the
kit they share is tests/support/bad_input_kit.py. The table in docs/RELIABILITY.md ("Bad input") lists the same cases.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.bad_input_engine_cases import BUILD, ENGINES
from tests.support.bad_input_kit import TIMEOUT_S, Base, Case, Kit, make_base, problem_lines, snapshot
from tests.support.bad_input_live_cases import FLAGS, MEDIA
from tests.support.bad_input_tool_cases import EXTRACT, SUBSCRIBE_AND_KEYS
from tests.support.live_fixtures import Collector, free_endpoint


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    return make_base(tmp_path_factory.mktemp("bad-input"))


CATALOGUE = [*FLAGS, *MEDIA, *ENGINES, *BUILD, *EXTRACT, *SUBSCRIBE_AND_KEYS]


def _param(case: Case):
    marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
    return pytest.param(case, id=case.id, marks=marks)


def test_catalogue_ids_are_unique_and_many() -> None:
    ids = [c.id for c in CATALOGUE]
    assert len(ids) == len(set(ids)) and len(ids) >= 25


@pytest.mark.parametrize("case", [_param(c) for c in CATALOGUE])
def test_bad_input(case: Case, base: Base, tmp_path: Path) -> None:
    kit = Kit(base, tmp_path / "case", free_endpoint(), base.engines)
    kit.tmp.mkdir()
    argv = case.setup(kit)
    kit.watch += [base.engines, kit.tmp]
    before = snapshot(kit.watch)
    env = {**os.environ, **kit.env}
    env.pop("QAMOE_ENGINES_DIR", None)
    sub = Collector(kit.endpoint) if case.subscribe else None
    if sub is not None:
        time.sleep(0.2)
    try:
        run = subprocess.run(
            argv, cwd=kit.tmp, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
        )
    finally:
        if sub is not None:
            sub.stop()
    err = run.stderr
    assert run.returncode == case.code, f"exit {run.returncode}, expected {case.code}:\n{err[-3000:]}"
    assert "Traceback" not in err, err[-3000:]
    problems = problem_lines(err)
    assert len(problems) == case.lines, f"expected {case.lines} problem line(s), got:\n" + "\n".join(problems)
    if case.lines:
        assert case.needle.lower() in problems[0].lower(), f"{case.needle!r} not in {problems[0]!r}"
    if case.check is not None:
        case.check(kit, err, sub)
    if not (case.writes and run.returncode == 0):
        assert snapshot(kit.watch) == before, "the run changed or left files behind"
