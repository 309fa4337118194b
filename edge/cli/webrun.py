"""`qamoe-web` as a subprocess, the way a user runs it: start it, read the address it prints, stop it with a
signal. The browser tests, tools/bench_web.py and tools/web_screenshot.py use it.

    with WebRun(WebCommand(endpoint)) as web:
        driver.get(web.url)                      # http://127.0.0.1:PORT/?token=...
        code = web.stop()                        # SIGINT: 0

Failures raise `LiveRunError` (edge.cli.liverun: the error of the subprocess drivers, raised in the caller,
carrying the child's exit code and the end of its stderr).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from edge.cli.liverun import LiveRunError

ANNOUNCE = "qamoe-web: open "


def web_executable() -> tuple[str, ...]:
    """The installed `qamoe-web` console script beside this interpreter, else `python -m edge.cli.web`."""
    script = Path(sys.executable).parent / "qamoe-web"
    return (str(script),) if script.is_file() else (sys.executable, "-m", "edge.cli.web")


@dataclass(frozen=True)
class WebCommand:
    """How to start qamoe-web: the node's endpoint, then `--host`, `--port` (0: a free one), `--token` (None:
    generated) and any further `args`."""

    endpoint: str
    token: str | None = None
    host: str = "127.0.0.1"
    port: int = 0
    args: Sequence[str] = ()
    executable: Sequence[str] = field(default_factory=web_executable)

    def argv(self) -> list[str]:
        out = [*self.executable, "--endpoint", self.endpoint, "--host", self.host, "--port", str(self.port)]
        if self.token is not None:
            out += ["--token", self.token]
        return out + list(self.args)


class WebRun:
    """A running qamoe-web; `url` is the page's address with its token once `start()` returned."""

    def __init__(self, command: WebCommand, start_timeout_s: float = 20.0) -> None:
        self.command = command
        self.url = ""
        self._timeout = start_timeout_s
        self._proc: subprocess.Popen[str] | None = None
        self._stderr: deque[str] = deque(maxlen=200)
        self._stdout: deque[str] = deque(maxlen=200)
        self._announced = threading.Event()

    def start(self) -> Self:
        self._proc = subprocess.Popen(
            self.command.argv(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, errors="replace",
        )  # fmt: skip
        for pipe, lines in ((self._proc.stdout, self._stdout), (self._proc.stderr, self._stderr)):
            threading.Thread(target=self._read, args=(pipe, lines), daemon=True).start()
        deadline = time.monotonic() + self._timeout
        while not self._announced.wait(0.05):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise LiveRunError(
                    f"qamoe-web did not start (exit {self._proc.wait()}); "
                    f"its stderr ends:\n{self.stderr[-2000:]}",
                    exit_code=self._proc.returncode,
                    stderr=self.stderr,
                )
        return self

    def _read(self, pipe: IO[str] | None, lines: deque[str]) -> None:
        if pipe is None:
            return
        for line in pipe:
            lines.append(line)
            if line.startswith(ANNOUNCE) and not self.url:
                self.url = line[len(ANNOUNCE) :].strip()
                self._announced.set()
        pipe.close()

    @property
    def base(self) -> str:
        """The server's root address without the token (`http://127.0.0.1:PORT/`)."""
        return self.url.split("?", 1)[0]

    @property
    def pid(self) -> int:
        return self._started().pid

    @property
    def stderr(self) -> str:
        return "".join(list(self._stderr))

    @property
    def stdout(self) -> str:
        return "".join(list(self._stdout))

    def stop(self, sig: int = signal.SIGINT, timeout_s: float = 10.0) -> int:
        """Send `sig` and wait for the exit code; LiveRunError (after killing it) if it does not exit in
        time."""
        proc = self._started()
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            return proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise LiveRunError(
                f"qamoe-web did not exit within {timeout_s:g} s of signal {sig}: killed",
                exit_code=proc.wait(),
                stderr=self.stderr,
            ) from None

    def kill(self) -> None:
        proc = self._started()
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    def _started(self) -> subprocess.Popen[str]:
        if self._proc is None:
            raise LiveRunError("qamoe-web has not started: use `with WebRun(...) as web:`")
        return self._proc

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._proc is not None:
            self.kill()
