"""Failures: missing devices, a file source lost mid-run (ABSENT, capped backoff, recovery), a stalled network
stream, clean stop; and the bounded hand-off buffers with their drop counters."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from edge.sources import (
    AudioRing,
    AudioSourceConfig,
    AudioWorker,
    Backoff,
    LatestSlot,
    ModalityState,
    ReadStatus,
    ReplayConfig,
    SourceBackendError,
    SourceNotFoundError,
    VideoFileSource,
    VideoSourceConfig,
    VideoWorker,
    WorkerConfig,
    open_audio_source,
    open_video_source,
    parse_camera,
    parse_mic,
)

FAST_BACKOFF = WorkerConfig(read_timeout_s=0.2, backoff_initial_s=0.05, backoff_max_s=0.4, absent_after_s=1.0)


class TimedVideoSource(VideoFileSource):
    """The real file VideoSource, recording when each open() is attempted (to measure the backoff schedule)."""

    def __init__(self, config: VideoSourceConfig) -> None:
        super().__init__(config)
        self.open_times: list[float] = []

    def open(self) -> None:
        self.open_times.append(time.monotonic())
        super().open()


def write_clip(path: Path, frames: int = 10) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (32, 24))
    for i in range(frames):
        writer.write(np.full((24, 32, 3), 10 + i * 20, np.uint8))
    writer.release()
    return path


def capture_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("capture-")]


def wait_for(predicate, timeout_s: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_missing_camera_names_what_exists_and_how_to_run_without(tmp_path: Path) -> None:
    for text in (str(tmp_path / "nope.mp4"), "/dev/video63", "63"):
        with pytest.raises(SourceNotFoundError) as info:
            open_video_source(VideoSourceConfig(parse_camera(text))).open()
        message = str(info.value)
        assert "\n" not in message
        assert "cameras here:" in message and "--camera none" in message, message


def test_missing_mic_names_what_exists_and_how_to_run_without(tmp_path: Path) -> None:
    with pytest.raises(SourceNotFoundError, match=r"no such file.*--mic none"):
        open_audio_source(AudioSourceConfig(parse_mic(str(tmp_path / "talk.wav")))).open()
    try:
        with pytest.raises(SourceNotFoundError) as info:
            open_audio_source(AudioSourceConfig(parse_mic("no-such-device-xyz"))).open()
    except SourceBackendError as exc:
        pytest.skip(f"PortAudio unavailable: {exc}")
    assert "inputs here:" in str(info.value) and "--mic none" in str(info.value)


def test_default_backoff_schedule() -> None:
    backoff = Backoff(0.25, 4.0, 2.0)
    assert [backoff.next() for _ in range(7)] == [0.25, 0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    backoff.reset()
    assert backoff.next() == 0.25


def test_worker_goes_absent_backs_off_and_recovers_when_the_file_returns(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "cam.avi")
    spare = shutil.copy(clip, tmp_path / "spare.avi")
    loop = ReplayConfig(realtime=True, loop=True)  # reopened by path at each pass: a removed file is noticed
    source = TimedVideoSource(VideoSourceConfig(parse_camera(str(clip)), replay=loop))
    worker = VideoWorker(source, FAST_BACKOFF)
    worker.start()
    try:
        assert worker.get(timeout_s=1.0).ok
        assert wait_for(lambda: worker.state is ModalityState.LIVE, 1.0)
        clip.unlink()  # the camera "goes away": the next pass (<= 0.4 s away) cannot reopen it
        assert wait_for(lambda: worker.state is ModalityState.ABSENT, 2.0)
        last_t = max(worker.get(timeout_s=0.0).t_ns, 0)
        assert worker.get(timeout_s=0.05).status is ReadStatus.ERROR  # absent: statuses, never raises
        time.sleep(1.5)  # let several reopen attempts fail
        attempts = np.diff(source.open_times[1:])  # [0] is start(); then the reopen attempts
        shutil.copy(spare, clip)  # it comes back
        assert wait_for(lambda: worker.state is ModalityState.LIVE, 1.5)
        back = worker.get(timeout_s=1.0)
        assert back.ok and back.t_ns > last_t
        stats = worker.stats()
        assert stats.failures == 1 and stats.recoveries == 1 and stats.reopen_attempts >= 4
    finally:
        worker.stop()
        assert worker.join(2.0)
    # measured intervals between failing attempts follow 0.05, 0.1, 0.2, 0.4 (capped) plus the open time
    expected = [0.1, 0.2, 0.4, 0.4][: len(attempts)]
    assert len(attempts) >= 3, source.open_times
    assert np.all(attempts[: len(expected)] >= np.array(expected) - 0.01), attempts
    assert np.all(attempts[: len(expected)] <= np.array(expected) + 0.15), attempts
    assert stats.recent_backoff_s[:4] == (0.05, 0.1, 0.2, 0.4)


def test_stop_returns_quickly_with_no_thread_left(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "cam.avi")
    video = VideoWorker(
        open_video_source(VideoSourceConfig(parse_camera(str(clip)), replay=ReplayConfig(loop=True)))
    )
    audio_src = open_audio_source(
        AudioSourceConfig(parse_mic(str(_tone(tmp_path))), replay=ReplayConfig(loop=True))
    )
    audio = AudioWorker(audio_src)
    video.start()
    audio.start()
    assert video.get(1.0).ok and audio.get(1.0).ok
    start = time.monotonic()
    video.stop()
    audio.stop()
    assert video.join(2.0) and audio.join(2.0)
    assert time.monotonic() - start < 2.0
    assert capture_threads() == []
    assert video.state is ModalityState.STOPPED and audio.state is ModalityState.STOPPED
    assert not video.source.is_open and not audio_src.is_open


def test_a_device_stream_that_will_not_close_is_abandoned_after_release_s() -> None:
    """Once in CI, with its PulseAudio server killed, a capture stream's Pa_CloseStream never returned and the
    worker hung in close(). That hang cannot be produced on demand here, so the stream is a stand-in whose
    close() blocks until released: close() must give up after release_s, count it, and leave the source
    closed (ready to reopen) with the blocked call parked on its own thread."""
    released = threading.Event()
    calls: list[bool] = []

    class StuckStream:
        def close(self, ignore_errors: bool = True) -> None:
            calls.append(ignore_errors)
            released.wait(10.0)

    source = open_audio_source(AudioSourceConfig(parse_mic("default"), release_s=0.3))
    source._stream = StuckStream()
    start = time.monotonic()
    source.close()
    took = time.monotonic() - start
    try:
        assert 0.3 <= took < 1.0, took
        assert calls == [True] and not source.is_open
        assert source.stats.abandoned_streams == 1
        parked = [t for t in threading.enumerate() if t.name == "audio-release"]
        assert len(parked) == 1 and parked[0].daemon
        source.close()  # nothing left to release: returns at once, counts nothing
        assert source.stats.abandoned_streams == 1
    finally:
        released.set()
    parked[0].join(2.0)
    assert not parked[0].is_alive()


def test_replay_worker_ends_with_eos_and_counts_latest_wins_drops(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "cam.avi", frames=10)
    fast = ReplayConfig(realtime=False)
    worker = VideoWorker(open_video_source(VideoSourceConfig(parse_camera(str(clip)), replay=fast)))
    worker.start()
    assert worker.join(2.0)  # nobody reads: 10 frames into a one-frame slot
    stats = worker.stats()
    assert stats.items == 10 and stats.dropped == 9 and stats.drop_policy == "latest-wins"
    last = worker.get(0.1)
    assert last.ok and last.seq == 10  # the latest frame won
    assert worker.get(0.1).status is ReadStatus.EOS and worker.state is ModalityState.ENDED


def _tone(tmp_path: Path) -> Path:
    import wave

    path = tmp_path / "tone.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes((np.sin(np.arange(8000) / 5) * 8000).astype(np.int16).tobytes())
    return path


@pytest.fixture()
def stalling_http_stream(tmp_path: Path) -> Iterator[str]:
    """A real HTTP server that sends half of an MPEG-TS clip and then stalls with the connection open."""
    path = tmp_path / "clip.ts"
    with av.open(str(path), "w", format="mpegts") as out:
        stream = out.add_stream("mpeg2video", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(50):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 5, np.uint8), format="bgr24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    data = path.read_bytes()
    release = threading.Event()
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\n\r\n" + data[: len(data) // 2])
            release.wait(10)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/clip.ts"
    release.set()
    server.close()
    thread.join(2)


def test_a_stalled_stream_read_returns_timeout(stalling_http_stream: str) -> None:
    config = VideoSourceConfig(parse_camera(stalling_http_stream), open_timeout_s=3.0, read_timeout_s=0.5)
    with open_video_source(config) as source:
        statuses = []
        started = time.monotonic()
        while time.monotonic() - started < 5.0:
            t = time.monotonic()
            frame = source.read()
            statuses.append((frame.status, time.monotonic() - t))
            if frame.status is not ReadStatus.OK:
                break
    ok = [s for s, _ in statuses if s is ReadStatus.OK]
    longest = max(took for _, took in statuses)
    assert len(ok) >= 5, statuses  # frames flowed before the stall
    # the stalled read ends after read_timeout_s (FFmpeg's interrupt; the decoder may flush a few buffered
    # frames first), and the read that finds nothing more says TIMEOUT
    assert statuses[-1][0] is ReadStatus.TIMEOUT, statuses
    assert 0.4 <= longest <= 1.5, longest  # bounded by read_timeout_s, not forever
    assert source.stats.timeouts == 1


def test_latest_slot_counts_overwrites() -> None:
    slot: LatestSlot[int] = LatestSlot()
    assert slot.get(0.01) is None
    for i in range(5):
        slot.put(i)
    assert slot.get(0.0) == 4 and slot.dropped == 4 and slot.depth == 0


def test_audio_ring_drops_oldest_and_never_merges_across_a_gap() -> None:
    ring = AudioRing(capacity_s=0.5, rate=1000)  # 500 samples
    ring.push(np.arange(400, dtype=np.float32), t_ns=0)
    ring.push(np.arange(400, 600, dtype=np.float32), t_ns=400_000_000)
    assert ring.dropped_samples == 100 and ring.overflows == 1 and ring.buffered_samples == 500
    samples, t_ns = ring.pop(1000, timeout_s=0.0)
    assert t_ns == 100_000_000 and samples[0] == 100 and samples.size == 500  # oldest 100 dropped
    ring.push(np.ones(100, np.float32), t_ns=1_000_000_000)
    ring.push(np.ones(100, np.float32), t_ns=1_500_000_000)  # 400 ms gap (e.g. a reconnect)
    first = ring.pop(1000, timeout_s=0.0)
    second = ring.pop(1000, timeout_s=0.0)
    assert first[0].size == 100 and first[1] == 1_000_000_000
    assert second[0].size == 100 and second[1] == 1_500_000_000
    t = time.monotonic()
    assert ring.pop(10, timeout_s=0.05) is None and time.monotonic() - t >= 0.05
