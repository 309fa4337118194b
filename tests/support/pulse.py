"""Test helper: a real-time virtual microphone (PulseAudio null sink + remapped monitor source).

`virtual_mic()` reuses the one CI started with `eval "$(tools/pulse_mic.sh start)"` (PULSE_SERVER set and
answering), else starts a private daemon through the same script in a temporary directory and stops it
afterwards. Either way it yields a `VirtualMic` whose `play(wav)` speaks into the microphone in real time.
Recording side: the ALSA device `pulse` (sounddevice/PortAudio), which reads PULSE_SERVER / PULSE_SOURCE
from the environment; the helper sets both for the duration.

Why the script and not Python here: CI and humans use exactly the same start-up, so this test covers it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "tools" / "pulse_mic.sh"
TOOLS = ("pulseaudio", "pactl", "paplay")


class PulseUnavailable(RuntimeError):
    """PulseAudio cannot be started here; the message says why (tests skip with it)."""


@dataclass(frozen=True)
class VirtualMic:
    env: dict[str, str]  # PULSE_SERVER, PULSE_SOURCE, QAMOE_PULSE_SINK
    owned: bool  # started by this helper (and stopped by it)

    @property
    def sink(self) -> str:
        return self.env["QAMOE_PULSE_SINK"]

    def play(self, wav: Path) -> subprocess.Popen[bytes]:
        """Start playing `wav` into the microphone (real time); returns the running paplay."""
        return subprocess.Popen(
            ["paplay", f"--device={self.sink}", str(wav)],
            env={**os.environ, **self.env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )


def parse_env(text: str) -> dict[str, str]:
    env = {}
    for line in text.splitlines():
        if line.startswith("export ") and "=" in line:
            key, value = line[len("export ") :].split("=", 1)
            env[key] = value
    return env


def _running_ci_mic() -> dict[str, str] | None:
    """The environment of a virtual mic started outside the tests (CI), if one answers."""
    if "PULSE_SERVER" not in os.environ or "QAMOE_PULSE_SINK" not in os.environ:
        return None
    probe = subprocess.run(["pactl", "info"], capture_output=True, timeout=10, check=False)
    if probe.returncode != 0:
        return None
    return {k: os.environ[k] for k in ("PULSE_SERVER", "QAMOE_PULSE_SINK") if k in os.environ} | {
        "PULSE_SOURCE": os.environ.get("PULSE_SOURCE", "qamoe_mic")
    }


def _script(command: str, directory: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QAMOE_PULSE_DIR": directory}
    env.pop("PULSE_SERVER", None)
    return subprocess.run(["bash", str(SCRIPT), command], env=env, capture_output=True, text=True, timeout=30,
                          check=False)  # fmt: skip


@contextlib.contextmanager
def virtual_mic() -> Iterator[VirtualMic]:
    """Yield a running virtual microphone with PULSE_SERVER/PULSE_SOURCE set in os.environ; raise
    PulseUnavailable (with the reason) when none can be had."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        raise PulseUnavailable(
            f"{', '.join(missing)} not installed (apt-get install pulseaudio pulseaudio-utils)"
        )
    env = _running_ci_mic()
    directory = None
    if env is None:
        # short path: the socket path must fit in sockaddr_un (108 bytes)
        directory = tempfile.mkdtemp(prefix="qpa-", dir="/tmp")
        started = _script("start", directory)
        if started.returncode != 0:
            shutil.rmtree(directory, ignore_errors=True)
            raise PulseUnavailable(f"PulseAudio did not start: {started.stderr.strip()[-300:]}")
        env = parse_env(started.stdout)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield VirtualMic(env, owned=directory is not None)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if directory is not None:
            _script("stop", directory)
            shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def virtual_mic_or_skip() -> Iterator[VirtualMic]:
    """The virtual microphone for a test; skips (with the reason) where PortAudio or PulseAudio is missing."""
    import pytest

    from edge.sources import SourceBackendError
    from edge.sources.devices import import_sounddevice

    try:
        import_sounddevice()
    except SourceBackendError as exc:
        pytest.skip(f"no PortAudio for the microphone: {exc}")
    try:
        with virtual_mic() as running:
            yield running
    except PulseUnavailable as exc:
        pytest.skip(f"no virtual microphone (PulseAudio cannot start): {exc}")


def espeak_wav(path: Path, text: str, *args: str) -> Path:
    """Speech synthesised by espeak-ng into `path` (extra espeak-ng args, e.g. "-s", "150"); skips without it."""
    import pytest

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed (apt-get install espeak-ng)")
    subprocess.run(["espeak-ng", *args, "-w", str(path), text], check=True)
    return path
