"""Every error class has one root and one exit code (issue 19).

`edge`: every exception class defined in the runtime derives from exactly one category of `edge.errors`
(usage 2, source 3, model 4, publish 5, output 6); the category's code is the row of README.md's exit-code
table whose meaning is that category's; `qamoe-live`'s `error_code` gives an instance exactly that code.
`qamoe` (core and bridge): every exception class derives from `QAMoEError`, never from an `edge` category, and
`qamoe.cli.exit_code` maps it through `EXIT_CODES` (1 for the families it does not list).

The classes are found by importing every module of both packages (pkgutil.walk_packages), so a new module with
an error class outside the hierarchy fails here without anyone listing it.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

from edge.cli.live import error_code
from edge.errors import (
    CATEGORIES,
    ModelFault,
    OutputFault,
    PublishFault,
    QamoeLiveError,
    SourceFault,
    UsageError,
)
from qamoe.cli import EXIT_CODES, EXIT_OTHER, exit_code
from qamoe.errors import QAMoEError

REPO = Path(__file__).resolve().parents[2]

# What the README's table says of each category's code (the start of the row's meaning).
MEANINGS = {
    UsageError: "bad arguments or configuration",
    SourceFault: "a source cannot be opened or decoded",
    ModelFault: "no usable model engine",
    PublishFault: "the publish port cannot be bound",
    OutputFault: "the `--out` file cannot be written",
}
# The errors of `edge.cli.liverun`, the driver that runs qamoe-live as a subprocess for tests, benchmarks and
# the soak: they are raised in the caller, never inside qamoe-live, and carry the child's own exit code in an
# `exit_code` instance attribute, which a category's class attribute would contradict.
OUTSIDE_THE_RUNTIME = {"edge.cli.liverun.LiveRunError", "edge.cli.liverun.LiveCommandError"}


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _error_classes(package: str) -> list[type[BaseException]]:
    """Every exception class defined in a module of `package` (imported, not parsed: what Python sees)."""
    root = importlib.import_module(package)
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(root.__path__, f"{package}."):
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if (isinstance(value, type) and issubclass(value, BaseException)
                    and value.__module__.startswith(f"{package}.")):
                found[_name(value)] = value
    return [found[k] for k in sorted(found)]


EDGE_ERRORS = [
    c for c in _error_classes("edge") if c is not QamoeLiveError and _name(c) not in OUTSIDE_THE_RUNTIME
]
QAMOE_ERRORS = _error_classes("qamoe")


def _readme_exit_codes() -> dict[int, str]:
    """code -> meaning, from the table under the README's "Exit codes" bullet."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    rows: dict[int, str] = {}
    for line in text.split("- Exit codes:", 1)[1].splitlines()[1:]:
        row = re.fullmatch(r"\s*\|\s*(\d+)\s*\|\s*(.+?)\s*\|\s*", line)
        if row:
            rows[int(row[1])] = row[2]
        elif rows and not line.strip().startswith("|"):
            break
    return rows


def category_problem(cls: type[BaseException]) -> str | None:
    """Why `cls` breaks the rule for edge's errors, or None: exactly one category in its MRO, and that
    category's code (the class may not set its own)."""
    found = [c for c in cls.__mro__ if c in CATEGORIES]
    if len(found) != 1:
        return f"{_name(cls)}: {len(found)} categories in its MRO ({', '.join(c.__name__ for c in found)})"
    if cls.exit_code != found[0].exit_code:
        return f"{_name(cls)}: exit_code {cls.exit_code}, its category {found[0].__name__} says " \
            f"{found[0].exit_code}"
    return None


def test_the_walk_finds_the_errors() -> None:
    names = {_name(c) for c in EDGE_ERRORS}
    assert len(EDGE_ERRORS) >= 40 and len(QAMOE_ERRORS) >= 15, (len(EDGE_ERRORS), len(QAMOE_ERRORS))
    assert {"edge.sources.errors.SourceUriError", "edge.features.text.TextModelError",
            "edge.cli.live.FlagError"} <= names
    assert {"qamoe.corpus.synth.SynthError", "qamoe.build.errors.ParityError"} <= {*map(_name, QAMOE_ERRORS)}


def test_readme_table_gives_each_category_its_code() -> None:
    table = _readme_exit_codes()
    assert set(table) == {0, 2, 3, 4, 5, 6, 129, 130, 143}, table
    assert set(MEANINGS) == set(CATEGORIES)
    for category, meaning in MEANINGS.items():
        assert table[category.exit_code].startswith(meaning), (category.__name__, table[category.exit_code])


def test_every_edge_error_has_exactly_one_category() -> None:
    codes = _readme_exit_codes()
    problems = [p for c in EDGE_ERRORS if (p := category_problem(c))]
    problems += [f"{_name(c)}: exit code {c.exit_code} is not in the README" for c in EDGE_ERRORS
                 if c.exit_code not in codes]
    assert not problems, "\n".join(problems)


def test_the_rule_fails_a_class_outside_it() -> None:
    class Orphan(ValueError):
        pass

    class Both(UsageError, SourceFault):
        pass

    class OwnCode(ModelFault):
        exit_code = 9

    assert "0 categories" in category_problem(Orphan)
    assert "2 categories" in category_problem(Both)
    assert "its category ModelFault says 4" in category_problem(OwnCode)
    assert category_problem(PublishFault) is None


@pytest.mark.parametrize("cls", EDGE_ERRORS, ids=_name)
def test_error_code_is_the_category_code(cls: type[BaseException]) -> None:
    exc = cls.__new__(cls)  # no constructor arguments needed (PortInUseError takes two)
    assert error_code(exc) == cls.exit_code


@pytest.mark.parametrize(
    ("name", "code"),
    [
        # subclasses of ValueError that the old ordered checks sent to the generic ValueError -> 2 rule
        ("edge.features.text.TextModelError", 4),
        ("edge.features.text.TextFeatureError", 4),
        ("edge.features.text.TextConfigError", 4),
        ("edge.features.visual.VisualConfigError", 4),
        # input errors: bad media from the source, no longer "bad arguments"
        ("edge.features.audio_quality.AudioInputError", 3),
        ("edge.features.face.VisualInputError", 3),
        ("edge.features.text.TextInputError", 3),
        ("edge.asr.transcriber.AsrInputError", 3),
        # unchanged, and out of their old family's category
        ("edge.sources.errors.SourceUriError", 2),
        ("edge.sources.errors.SourceConfigError", 2),
        ("edge.publish.errors.CurveKeyError", 2),
        ("edge.publish.errors.PublishConfigError", 2),
        ("edge.pipeline.video_out.OutputConfigError", 2),
        ("edge.asr.transcriber.AsrConfigError", 2),
        ("edge.features.spec.FeatureSpecError", 4),
        ("edge.publish.errors.PortInUseError", 5),
        ("edge.pipeline.video_out.OutputError", 6),
    ],
)
def test_codes_that_were_wrong_or_moved(name: str, code: int) -> None:
    cls = next(c for c in EDGE_ERRORS if _name(c) == name)
    assert error_code(cls.__new__(cls)) == code


def test_error_code_of_an_untyped_error() -> None:
    assert error_code(RuntimeError("a bug")) is None
    assert error_code(QamoeLiveError("raised without a category")) is None
    assert error_code(ValueError("from a library under the runtime")) == 2  # the documented fallback


def test_every_qamoe_error_has_qamoe_root_and_a_code() -> None:
    problems = []
    for cls in QAMOE_ERRORS:
        if not issubclass(cls, QAMoEError):
            problems.append(f"{_name(cls)}: not a QAMoEError")
        if issubclass(cls, QamoeLiveError):
            problems.append(f"{_name(cls)}: also under edge's QamoeLiveError (two roots)")
        families = [t for t in EXIT_CODES if issubclass(cls, t)]
        if len(families) > 1:
            problems.append(f"{_name(cls)}: in {len(families)} EXIT_CODES families (its code hangs on order)")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("qamoe.corpus.plan.CorpusConfigError", 2),
        ("qamoe.corpus.raw_corruptions.RawCorruptionError", 2),
        ("qamoe.corpus.facebank.FaceBankConfigError", 2),
        ("qamoe.corpus.offline_errors.OfflineConfigError", 2),
        ("qamoe.corpus.synth.SynthConfigError", 2),
        ("qamoe.corpus.facebank.FaceBankError", EXIT_OTHER),
        ("qamoe.corpus.offline_errors.OfflineError", EXIT_OTHER),
        ("qamoe.corpus.offline_errors.ClipReadError", EXIT_OTHER),
        ("qamoe.corpus.synth.SynthError", EXIT_OTHER),
        ("qamoe.errors.DataError", 3),
        ("qamoe.errors.CheckpointError", 4),
    ],
)
def test_qamoe_codes(name: str, code: int) -> None:
    cls = next(c for c in QAMOE_ERRORS if _name(c) == name)
    assert exit_code(cls.__new__(cls)) == code


def test_corpus_config_errors_are_still_value_errors() -> None:
    """Callers catch them as ValueError; giving them a root must not take that away."""
    for cls in QAMOE_ERRORS + EDGE_ERRORS:
        if cls.__name__.endswith("ConfigError"):
            assert issubclass(cls, ValueError), _name(cls)


def test_a_tool_stopped_by_sigterm_runs_its_cleanup_and_exits_143(tmp_path: Path) -> None:
    """SIGTERM reaches a tool's main like Ctrl-C: `finally` blocks run (a corpus build stops its worker pool
    and keeps its shards), one line on stderr, no traceback, exit 143; the caller's handler is put back."""
    import subprocess
    import sys

    done = tmp_path / "cleaned-up"
    script = f"""
import os, signal, sys, time
from qamoe.cli import run_main

def main():
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
    finally:
        open({str(done)!r}, "w").close()

code = run_main(main)
assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
sys.exit(code)
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 143, proc.stderr
    assert proc.stderr.strip() == "terminated" and done.is_file()
