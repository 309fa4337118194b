"""The live-run harness (edge.cli.liverun): how qamoe-live is started, watched, stopped and read back by the
tests, the benchmarks and the soak. A bad flag, stand-in processes for what qamoe-live itself cannot be made
to do on cue (outlive a timeout, flood stderr), and one real short replay of a GRID clip."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from edge.cli.liverun import LiveCommand, LiveCommandError, LiveRun, LiveRunError, live_executable, run_to_end
from edge.publish import validate
from tests.support.live_fixtures import GRID, free_endpoint

CLIP = GRID / "id2_vcd_swwp2s.mpg"  # "set white with p two soon", 3 s


def _python(code: str) -> LiveCommand:
    """A stand-in process run through the harness in place of qamoe-live."""
    return LiveCommand(executable=(sys.executable, "-c", code))


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_bad_flag_exits_2_and_wait_raises_with_its_stderr_line() -> None:
    with LiveRun(LiveCommand(("--no-such-flag",))) as run, pytest.raises(LiveRunError) as caught:
        run.wait(lambda: False, 60, "a message")
    error = caught.value
    assert error.exit_code == 2
    assert "exited 2 while waiting for a message" in str(error)
    assert "unrecognized arguments: --no-such-flag" in str(error)  # the reason, in the message itself
    assert "unrecognized arguments: --no-such-flag" in error.stderr


def test_the_command_line_puts_engines_and_endpoint_first_so_a_later_flag_wins(tmp_path: Path) -> None:
    command = LiveCommand(
        ["--endpoint", "tcp://127.0.0.1:2"], engines_dir=tmp_path, endpoint="tcp://127.0.0.1:1"
    )
    exe = live_executable()
    assert command.argv() == [*exe, "--engines-dir", str(tmp_path), "--endpoint", "tcp://127.0.0.1:1",
                              "--endpoint", "tcp://127.0.0.1:2"]  # fmt: skip
    assert exe == (str(Path(sys.executable).parent / "qamoe-live"),) or exe[1:] == ("-m", "edge.cli.live")
    with pytest.raises(LiveCommandError, match="sequence of strings"):
        LiveCommand(("--out", tmp_path))  # type: ignore[arg-type]
    with pytest.raises(LiveCommandError, match="tcp://127.0.0.1:5556"):
        LiveCommand(endpoint="5556")
    with pytest.raises(LiveCommandError, match="endpoint=free_endpoint"):
        LiveRun(LiveCommand()).record()


def test_the_module_form_runs_from_any_directory(tmp_path: Path) -> None:
    """Where the console script is not installed: `python -m edge.cli.live`, wherever the caller stands."""
    command = LiveCommand(
        ("--no-such-flag",), cwd=tmp_path, executable=(sys.executable, "-m", "edge.cli.live")
    )
    outcome = run_to_end(command, 60)
    assert outcome.exit_code == 2 and "unrecognized arguments: --no-such-flag" in outcome.stderr


def test_env_is_added_to_the_inherited_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QAMOE_LIVERUN_INHERITED", "x")  # as the virtual microphone's PULSE_SERVER is
    code = "import os; print(os.environ.get('QAMOE_LIVERUN_SET'), os.environ.get('QAMOE_LIVERUN_INHERITED'))"
    command = LiveCommand(executable=(sys.executable, "-c", code), env={"QAMOE_LIVERUN_SET": "y"})
    assert run_to_end(command, 30).stdout == "y x\n"


def test_a_run_that_outlives_its_timeout_is_killed_and_said_so() -> None:
    with LiveRun(
        _python("import sys, time; print('waiting', file=sys.stderr, flush=True); time.sleep(120)")
    ) as run:
        run.wait(lambda: run.stderr_lines(), 30, "its first line")
        with pytest.raises(
            LiveRunError, match=r"still running after 0.5 s: killed; its stderr ends:\nwaiting"
        ):
            run.finish(0.5)
        assert run.returncode == -signal.SIGKILL and _gone(run.pid)


def test_leaving_the_block_kills_what_still_runs() -> None:
    with (
        pytest.raises(RuntimeError, match="the test failed"),
        LiveRun(_python("import time; time.sleep(120)")) as run,
    ):
        pid = run.pid
        raise RuntimeError("the test failed")
    assert run.returncode == -signal.SIGKILL and _gone(pid)


def test_a_flood_of_stderr_never_blocks_and_only_its_tail_is_kept() -> None:
    code = "import sys\nfor i in range(200_000): sys.stderr.write(f'line {i}\\n')\nprint('done')"
    with LiveRun(_python(code), tail_lines=100) as run:
        outcome = run.finish(60)
    lines = outcome.stderr.splitlines()
    assert outcome.exit_code == 0 and outcome.stdout == "done\n"
    assert len(lines) == 100 and lines[-1] == "line 199999"


@pytest.mark.shared
def test_a_short_replay_publishes_and_stops_with_130_on_sigint(live_engines: Path) -> None:
    if not CLIP.exists():
        pytest.skip(f"{CLIP} not found: the GRID clips live in ../shared/media/grid")
    command = LiveCommand(("--video-file", str(CLIP)), engines_dir=live_engines, endpoint=free_endpoint())
    with LiveRun(command, record=True) as run:
        first = run.wait(lambda: run.of("sentiment"), 60, "a first window")
        outcome = run.stop(signal.SIGINT)
    assert outcome.exit_code == 130, outcome.stderr
    assert outcome.stop_s is not None and outcome.stop_s < 10
    assert "Traceback" not in outcome.stderr and "publishing on" in outcome.stderr
    assert len(outcome.of("sentiment")) >= len(first) >= 1
    for topic, body in outcome.messages:
        validate(topic, body)
