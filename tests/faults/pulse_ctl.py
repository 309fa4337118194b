"""A virtual microphone the fault tests own: a private PulseAudio daemon started by tools/pulse_mic.sh (as CI and
tests/support/pulse.py do), which a test can kill (the microphone disappears: its server is gone) and start again (it
comes back). Never the CI-wide one: killing that would break other tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.support.pulse import TOOLS, _script, parse_env


@dataclass
class PrivateMic:
    directory: str
    env: dict[str, str]

    @property
    def sink(self) -> str:
        return self.env["QAMOE_PULSE_SINK"]

    def play(self, wav: Path) -> subprocess.Popen[bytes]:
        """Start playing `wav` into the microphone, in real time."""
        return subprocess.Popen(["paplay", f"--device={self.sink}", str(wav)], env={**os.environ, **self.env},
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip

    def kill(self) -> None:
        """The microphone disappears: SIGKILL its PulseAudio daemon (every client's stream dies with it)."""
        pid = int((Path(self.directory) / "run" / "pulse" / "pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.01)
        raise AssertionError(f"PulseAudio {pid} survived SIGKILL")

    def start(self) -> None:
        """The microphone comes back: the same daemon set-up, started again; returns once it delivers audio."""
        started = _script("start", self.directory)
        assert started.returncode == 0, started.stderr


@contextlib.contextmanager
def private_mic_or_skip() -> Iterator[PrivateMic]:
    import pytest

    from edge.sources import SourceBackendError
    from edge.sources.devices import import_sounddevice

    try:
        import_sounddevice()
    except SourceBackendError as exc:
        pytest.skip(f"no PortAudio for the microphone: {exc}")
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install pulseaudio pulseaudio-utils)")
    directory = tempfile.mkdtemp(prefix="qpf-", dir="/tmp")  # short: a unix socket path is at most 108 bytes
    started = _script("start", directory)
    if started.returncode != 0:
        shutil.rmtree(directory, ignore_errors=True)
        pytest.skip(f"no virtual microphone (PulseAudio cannot start): {started.stderr.strip()[-300:]}")
    env = parse_env(started.stdout)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield PrivateMic(directory, env)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _script("stop", directory)
        shutil.rmtree(directory, ignore_errors=True)


def write_wav(path: Path, samples: np.ndarray, rate: int = 16_000) -> Path:
    """Mono float samples in [-1, 1] as 16-bit PCM (values beyond are clipped, as an ADC would)."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
        raw = np.frombuffer(w.readframes(w.getnframes()), {1: np.uint8, 2: np.int16}[width])
    x = raw.astype(np.float32) / (32768.0 if width == 2 else 128.0)
    return x.reshape(-1, channels).mean(axis=1), rate
