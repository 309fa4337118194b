"""A real-time virtual microphone: PulseAudio null sink + remapped monitor source (tests/support/pulse.py, the same
tools/pulse_mic.sh CI runs), speech played into it with paplay, read by `AudioSource` through PortAudio's
ALSA `pulse` device chosen by name substring, live at 16 kHz."""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edge.sources import (
    SAMPLE_RATE,
    AudioSourceConfig,
    AudioWorker,
    ModalityState,
    ReadStatus,
    WorkerConfig,
    list_devices,
    open_audio_source,
    parse_mic,
)
from tests.support.pulse import SCRIPT, VirtualMic, espeak_wav, parse_env, virtual_mic_or_skip


@pytest.fixture(scope="module")
def mic() -> Iterator[VirtualMic]:
    with virtual_mic_or_skip() as running:
        yield running


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return espeak_wav(tmp_path_factory.mktemp("speech") / "hello.wav", "hello world, this is the virtual microphone")


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) if x.size else 0.0


def test_virtual_mic_streams_real_time_audio_whose_energy_rises_with_speech(
    mic: VirtualMic, speech: Path
) -> None:
    source = open_audio_source(AudioSourceConfig(parse_mic("pulse"), chunk_s=0.1))  # a device-name substring
    chunks, played_at = [], None
    with source:
        start = time.monotonic()
        player = None
        while time.monotonic() - start < 4.0:
            chunk = source.read(timeout_s=0.5)
            chunks.append((time.monotonic() - start, chunk))
            if player is None and time.monotonic() - start >= 1.0:
                player, played_at = mic.play(speech), time.monotonic() - start
        elapsed = time.monotonic() - start
        player.wait(10)
    assert player.returncode == 0, player.stderr.read() if player.stderr else ""
    good = [(t, c) for t, c in chunks if c.status is ReadStatus.OK]
    assert len(good) >= 0.8 * len(chunks)
    total_s = sum(c.samples.size for _, c in good) / SAMPLE_RATE
    assert 0.8 * elapsed <= total_s <= elapsed + 0.2, (total_s, elapsed)  # real time: not faster, not lost
    stamps = np.array([c.t_ns for _, c in good])
    assert np.all(np.diff(stamps) > 0)
    before = np.concatenate([c.samples for t, c in good if t < played_at])
    during = np.concatenate([c.samples for t, c in good if played_at + 0.3 < t < played_at + 2.3])
    assert rms(before) < 1e-3  # the silent microphone
    assert rms(during) > 0.02 and rms(during) > 20 * max(rms(before), 1e-5), (rms(before), rms(during))
    assert source.stats.device_overflows == 0 and source.stats.ring_dropped_samples == 0


def test_virtual_mic_is_listed_and_runs_on_a_worker(mic: VirtualMic) -> None:
    names = [a.name for a in list_devices().audio_inputs]
    assert "pulse" in names, names
    worker = AudioWorker(open_audio_source(AudioSourceConfig(parse_mic("pulse"))), WorkerConfig(read_timeout_s=0.2))
    worker.start()
    try:
        got = 0
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            got += worker.get(timeout_s=0.2).samples.size
        assert worker.state is ModalityState.LIVE
        assert got >= 0.6 * SAMPLE_RATE  # ~1 s of live audio within 1 s (minus stream start-up)
    finally:
        worker.stop()
        assert worker.join(2.0)


def test_a_microphone_that_disappears_goes_absent_and_comes_back(
    mic: VirtualMic,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A private PulseAudio (not CI's shared one) is stopped under a running worker and started again."""
    caplog.set_level(logging.DEBUG, logger="edge.sources")  # on failure, the log shows which device call blocked
    directory = str(tmp_path_factory.mktemp("pa", numbered=True))
    if len(directory) > 80:  # the socket path must fit in sockaddr_un
        pytest.skip(f"temporary directory path too long for a unix socket: {directory}")
    monkeypatch.setenv("QAMOE_PULSE_DIR", directory)
    script = ["bash", str(SCRIPT)]
    env = parse_env(subprocess.run([*script, "start"], capture_output=True, text=True, check=True).stdout)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    config = WorkerConfig(read_timeout_s=0.2, backoff_initial_s=0.05, backoff_max_s=0.4)
    worker = AudioWorker(open_audio_source(AudioSourceConfig(parse_mic("pulse"), stall_s=0.5)), config)
    worker.start()
    try:
        assert worker.get(timeout_s=1.0).ok
        subprocess.run([*script, "stop"], check=True)
        lost = time.monotonic()
        while worker.state is not ModalityState.ABSENT and time.monotonic() - lost < 3.0:
            worker.get(timeout_s=0.1)
        assert worker.state is ModalityState.ABSENT
        detect_s = time.monotonic() - lost
        assert worker.get(timeout_s=0.1).status is ReadStatus.ERROR  # statuses, never an exception
        subprocess.run([*script, "start"], capture_output=True, check=True)
        back = time.monotonic()
        while worker.state is not ModalityState.LIVE and time.monotonic() - back < 3.0:
            worker.get(timeout_s=0.1)
        assert worker.state is ModalityState.LIVE, worker.stats()
        recover_s = time.monotonic() - back
        stats = worker.stats()
        assert stats.failures >= 1 and stats.recoveries >= 1
        assert detect_s < 1.5 and recover_s < 1.5, (detect_s, recover_s)
    finally:
        worker.stop()
        assert worker.join(2.0)
        subprocess.run([*script, "stop"], check=False)
