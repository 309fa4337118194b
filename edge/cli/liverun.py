"""`qamoe-live` as a subprocess, the way a user runs it: the one place that knows how to start it, watch what
it publishes, stop it with a signal and read how it ended. The tests, the benchmarks and the soak use it.

    with LiveRun(LiveCommand(("--video-file", "talk.mp4"), engines_dir=engines, endpoint=free_endpoint()),
                 record=True) as run:
        run.wait(lambda: run.of("sentiment"), 60, "a first window")
        outcome = run.stop(signal.SIGINT)   # exit_code 130, stop_s, stderr, messages

Its stdout and stderr are read by threads into bounded tails, so a chatty run never fills a pipe and stalls.
A run that is still going when the `with` block ends is killed: no process is ever left behind.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Self, TypeVar

from edge.publish.recorder import Recorder

log = logging.getLogger(__name__)
T = TypeVar("T")
POLL_S = 0.02  # how often `wait` asks its predicate
TAIL_LINES = 10_000  # of stderr (and stdout) kept: a 30-minute run at INFO writes about 7000 lines
READER_JOIN_S = 5.0
RECORDER_CONNECT_S = 0.2  # a recorder started before the process connects before the first message


class LiveRunError(RuntimeError):
    """qamoe-live did not do what the caller waited for: it exited, or time ran out. Carries its exit code
    (None while it still runs) and the end of its stderr, which usually names the reason."""

    def __init__(self, message: str, *, exit_code: int | None = None, stderr: str = "") -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.stderr = stderr


class LiveCommandError(LiveRunError, ValueError):
    """A `LiveCommand` that cannot start anything (the message says which field to fix)."""


def live_executable() -> tuple[str, ...]:
    """The installed `qamoe-live` console script beside this interpreter, else `python -m edge.cli.live`."""
    script = Path(sys.executable).parent / "qamoe-live"
    return (str(script),) if script.is_file() else (sys.executable, "-m", "edge.cli.live")


@dataclass(frozen=True)
class LiveCommand:
    """How to start qamoe-live: `args` after `--engines-dir` and `--endpoint` (a later flag wins), and the
    process's surroundings. `env` is added to this process's environment as it is when the run starts (so
    variables a fixture exported, such as PULSE_SERVER, are inherited).
    `preexec` runs in the child before exec (resource limits, dropped capabilities)."""

    args: Sequence[str] = ()
    engines_dir: Path | None = None
    endpoint: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    preexec: Callable[[], None] | None = None
    executable: Sequence[str] = field(default_factory=live_executable)

    def __post_init__(self) -> None:
        object.__setattr__(self, "args", tuple(self.args))
        object.__setattr__(self, "executable", tuple(self.executable))
        if isinstance(self.args, str) or not all(isinstance(a, str) for a in self.args):
            raise LiveCommandError(
                f"args must be a sequence of strings, e.g. ('--video-file', 'x.mp4'): {self.args!r}"
            )
        if not self.executable:
            raise LiveCommandError("executable is empty: leave it out to run the installed qamoe-live")
        if self.endpoint is not None and "://" not in self.endpoint:
            raise LiveCommandError(
                f"endpoint {self.endpoint!r} is not a ZeroMQ endpoint such as tcp://127.0.0.1:5556"
            )

    def argv(self) -> list[str]:
        out = list(self.executable)
        if self.engines_dir is not None:
            out += ["--engines-dir", str(self.engines_dir)]
        if self.endpoint is not None:
            out += ["--endpoint", self.endpoint]
        return out + list(self.args)

    def environment(self) -> dict[str, str] | None:
        """The child's environment, or None to inherit this process's unchanged."""
        if not self.env and self.executable[1:2] != ("-m",):
            return None
        env = {**os.environ, **self.env}
        if self.executable[1:2] == ("-m",):  # not installed: the child imports `edge` from where this one did
            root = str(Path(__file__).resolve().parents[2])
            env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        return env


@dataclass(frozen=True)
class LiveOutcome:
    """How a run ended. `stop_s`: seconds from the signal to the exit (None when it ended by itself)."""

    exit_code: int
    stderr: str
    stdout: str
    stop_s: float | None
    messages: list[tuple[str, dict]]

    def of(self, topic_suffix: str) -> list[dict]:
        """The recorded payloads whose topic ends with `topic_suffix` (e.g. "sentiment")."""
        return [body for topic, body in self.messages if topic.endswith(topic_suffix)]


class _Tail:
    """A pipe read to its end by a thread; the last `lines` lines kept."""

    def __init__(self, pipe: IO[str], name: str, lines: int, on_line: Callable[[str], None] | None) -> None:
        self.lines: deque[str] = deque(maxlen=lines)
        self._pipe, self._on_line = pipe, on_line
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for line in self._pipe:
            self.lines.append(line)
            if self._on_line is not None:
                try:
                    self._on_line(line)
                except Exception:  # the pipe must keep being read, or the process stalls on a full pipe
                    log.exception("the line callback failed on %r", line)
        self._pipe.close()

    def text(self) -> str:
        return "".join(list(self.lines))

    def join(self) -> None:
        self._thread.join(READER_JOIN_S)


class LiveRun:
    """A running qamoe-live. `record=True` starts a `Recorder` on the command's endpoint before the process
    (`record()` starts one later, e.g. after a start-up to leave out). `on_stderr` sees every stderr line as
    it is read, on the reading thread."""

    def __init__(
        self,
        command: LiveCommand,
        *,
        record: bool = False,
        on_stderr: Callable[[str], None] | None = None,
        tail_lines: int = TAIL_LINES,
    ) -> None:
        self.command = command
        self.recorder: Recorder | None = None
        self._record_first, self._on_stderr, self._tail_lines = record, on_stderr, tail_lines
        self._proc: subprocess.Popen[str] | None = None
        self._err: _Tail | None = None
        self._out: _Tail | None = None
        self._outcome: LiveOutcome | None = None

    # ------------------------------------------------------------------------------------------ start, watch
    def start(self) -> Self:
        if self._proc is not None:
            raise LiveRunError("this run was started already: make a new LiveRun")
        if self._record_first:
            self.record()
            time.sleep(RECORDER_CONNECT_S)
        argv = self.command.argv()
        log.debug("starting %s", " ".join(argv))
        try:
            self._proc = subprocess.Popen(
                argv,
                cwd=self.command.cwd,
                env=self.command.environment(),
                # runs with threads about (the recorder's): keep it to a system call (setrlimit, prctl)
                preexec_fn=self.command.preexec,  # noqa: PLW1509
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
            )
        except BaseException:
            if self.recorder is not None:  # `with` does not call __exit__ when __enter__ raises
                self.recorder.stop(0.0)
            raise
        assert self._proc.stdout is not None and self._proc.stderr is not None
        self._err = _Tail(self._proc.stderr, "liverun-stderr", self._tail_lines, self._on_stderr)
        self._out = _Tail(self._proc.stdout, "liverun-stdout", self._tail_lines, None)
        return self

    def record(self) -> Recorder:
        """Start recording what the run publishes (once; later calls return the same recorder)."""
        if self.recorder is None:
            if self.command.endpoint is None:
                raise LiveCommandError(
                    "recording needs the endpoint: give LiveCommand an endpoint=free_endpoint()"
                )
            self.recorder = Recorder(self.command.endpoint)
        return self.recorder

    def of(self, topic_suffix: str) -> list[dict]:
        """The payloads recorded so far whose topic ends with `topic_suffix` (e.g. "sentiment")."""
        return self._recording().of(topic_suffix)

    @property
    def messages(self) -> list[tuple[str, dict]]:
        """Every (topic, payload) recorded so far, in order."""
        return list(self._recording().messages)

    @property
    def pid(self) -> int:
        return self._started().pid

    @property
    def returncode(self) -> int | None:
        """The exit code, or None while it runs."""
        return self._started().poll()

    @property
    def running(self) -> bool:
        return self.returncode is None

    @property
    def stderr(self) -> str:
        """What it has written to stderr so far (the last `tail_lines` lines)."""
        return self._err.text() if self._err is not None else ""

    def stderr_lines(self) -> list[str]:
        return [line.rstrip("\n") for line in list(self._err.lines)] if self._err is not None else []

    def wait(self, predicate: Callable[[], T], timeout_s: float, what: str) -> T:
        """Poll `predicate` until it returns something truthy and return that. Raises `LiveRunError` (with the
        end of stderr) when the process exits first or `timeout_s` passes."""
        deadline = time.monotonic() + timeout_s
        while True:
            got = predicate()
            if got:
                return got
            code = self.returncode
            if code is not None:
                got = predicate()  # what it published just before it exited
                if got:
                    return got
                raise self._error(f"qamoe-live exited {code} while waiting for {what}")
            if time.monotonic() >= deadline:
                raise self._error(f"qamoe-live: no {what} within {timeout_s:g} s")
            time.sleep(POLL_S)

    def send_signal(self, sig: int) -> None:
        """Send `sig` (SIGSTOP/SIGCONT to stall it, SIGINT/SIGTERM/SIGHUP to stop it: see `stop`)."""
        self._started().send_signal(sig)

    def kill(self) -> None:
        proc = self._started()
        if proc.poll() is None:
            log.warning("killing qamoe-live (pid %d)", proc.pid)
            proc.kill()

    # ------------------------------------------------------------------------------------------------ ending
    def stop(self, sig: int = signal.SIGINT, timeout_s: float = 10.0, settle_s: float = 0.5) -> LiveOutcome:
        """Send `sig` (if it still runs), wait `timeout_s` for it to exit, then record `settle_s` more.
        Raises `LiveRunError` (after killing it) when it does not exit in time."""
        proc = self._started()
        if proc.poll() is not None:
            return self._finish(None, settle_s)
        t0 = time.monotonic()
        proc.send_signal(sig)
        self._exit_within(
            timeout_s, f"did not exit within {timeout_s:g} s of signal {signal.Signals(sig).name}"
        )
        return self._finish(time.monotonic() - t0, settle_s)

    def finish(self, timeout_s: float, settle_s: float = 0.5) -> LiveOutcome:
        """Wait `timeout_s` for it to end by itself (end of file, --duration, an error); then `settle_s` more
        of recording. Raises `LiveRunError` (after killing it) when it is still running then."""
        self._exit_within(timeout_s, f"still running after {timeout_s:g} s")
        return self._finish(None, settle_s)

    def _exit_within(self, timeout_s: float, why: str) -> None:
        proc = self._started()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            proc.wait()
            self._finish(None, 0.0)
            raise self._error(f"qamoe-live {why}: killed") from None

    def _finish(self, stop_s: float | None, settle_s: float) -> LiveOutcome:
        if self._outcome is None:
            proc = self._started()
            proc.wait()
            for tail in (self._err, self._out):
                if tail is not None:
                    tail.join()
            messages = self.recorder.stop(settle_s) if self.recorder is not None else []
            stdout = self._out.text() if self._out is not None else ""
            self._outcome = LiveOutcome(proc.returncode, self.stderr, stdout, stop_s, messages)
        return self._outcome

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._proc is None:
            if self.recorder is not None:
                self.recorder.stop(0.0)
            return
        self.kill()
        self._finish(None, 0.0)

    # ------------------------------------------------------------------------------------------------ helpers
    def _started(self) -> subprocess.Popen[str]:
        if self._proc is None:
            raise LiveRunError("the run has not started: use `with LiveRun(...) as run:` or call start()")
        return self._proc

    def _recording(self) -> Recorder:
        if self.recorder is None:
            raise LiveRunError("this run records nothing: pass record=True or call record() first")
        return self.recorder

    def _error(self, message: str) -> LiveRunError:
        if self.returncode is not None and self._err is not None:
            self._err.join()  # it has exited: read what it wrote last, which names the reason
        lines = self.stderr_lines()[-20:]
        end = "\n".join(lines) if lines else "(nothing on stderr)"
        return LiveRunError(
            f"{message}; its stderr ends:\n{end}", exit_code=self.returncode, stderr=self.stderr
        )


def run_to_end(command: LiveCommand, timeout_s: float, *, record: bool = False) -> LiveOutcome:
    """Start qamoe-live and let it end by itself (end of file, --duration, an error) within `timeout_s`."""
    with LiveRun(command, record=record) as run:
        return run.finish(timeout_s)
