"""File sources replayed like devices: a clip this test writes (so CI without ../shared is covered), the real
GRID clips from ../shared, and WAV / MPEG audio through PyAV."""

from __future__ import annotations

import time
import wave
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.sources import (
    SAMPLE_RATE,
    AudioSource,
    AudioSourceConfig,
    ReadStatus,
    ReplayConfig,
    VideoSource,
    VideoSourceConfig,
    open_audio_source,
    open_video_source,
    parse_camera,
    parse_mic,
    parse_video_file,
)
from edge.sources.video import FrozenDetector

FPS = 25
N_FRAMES = 25  # 1 s
FROZEN_RUN = range(10, 17)  # 7 identical frames: with frozen_after=5, frames 14, 15, 16 are flagged
FRAME_NS = 1_000_000_000 // FPS
FAST = ReplayConfig(realtime=False, t0_ns=1_000)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1 s of 64x48 MJPG at 25 fps (frames coded alone, so identical input frames decode identically)."""
    path = tmp_path_factory.mktemp("media") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (64, 48))
    assert writer.isOpened(), "OpenCV cannot write MJPG here"
    for i in range(N_FRAMES):
        writer.write(np.full((48, 64, 3), 99 if i in FROZEN_RUN else i * 9, np.uint8))
    writer.release()
    return path


@pytest.fixture(scope="module")
def wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1.5 s stereo int16 at 22.05 kHz (neither the rate nor the layout the runtime wants): a 440 Hz tone."""
    path = tmp_path_factory.mktemp("media") / "tone.wav"
    t = np.arange(int(1.5 * 22_050)) / 22_050
    tone = (0.5 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(22_050)
        w.writeframes(np.stack([tone, tone], axis=1).tobytes())
    return path


@pytest.fixture(scope="module")
def grid_clips(repo_root: Path) -> list[Path]:
    clips = sorted((repo_root.parent / "shared" / "media" / "grid").glob("*.mpg"))
    if not clips:
        pytest.skip(
            "GRID clips not found in ../shared/media/grid (the shared folder beside the repo is absent)"
        )
    return clips


def read_all_video(source: VideoSource, limit: int = 10_000) -> list:
    frames = []
    with source:
        for _ in range(limit):
            frame = source.read(timeout_s=2.0)
            frames.append(frame)
            if frame.status is not ReadStatus.OK:
                break
    return frames


def read_all_audio(source: AudioSource, limit: int = 10_000) -> list:
    chunks = []
    with source:
        for _ in range(limit):
            chunk = source.read(timeout_s=2.0)
            chunks.append(chunk)
            if chunk.status is not ReadStatus.OK:
                break
    return chunks


def test_video_file_as_camera_fast_mode(clip: Path) -> None:
    frames = read_all_video(open_video_source(VideoSourceConfig(parse_camera(str(clip)), replay=FAST)))
    assert [f.status for f in frames] == [ReadStatus.OK] * N_FRAMES + [ReadStatus.EOS]
    good = frames[:-1]
    assert [f.seq for f in good] == list(range(1, N_FRAMES + 1))
    assert [f.t_ns for f in good] == [1_000 + i * FRAME_NS for i in range(N_FRAMES)]  # synthesized media time
    assert all(
        f.image is not None and f.image.shape == (48, 64, 3) and f.image.dtype == np.uint8 for f in good
    )
    assert [i for i, f in enumerate(good) if f.frozen] == [14, 15, 16]


def test_fast_mode_is_deterministic(clip: Path) -> None:
    runs = [
        read_all_video(open_video_source(VideoSourceConfig(parse_camera(str(clip)), replay=FAST))) for _ in range(2)
    ]
    assert [f.t_ns for f in runs[0]][:-1] == [f.t_ns for f in runs[1]][:-1]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(runs[0][:-1], runs[1][:-1], strict=True))


def test_real_time_pacing_takes_the_media_duration(clip: Path) -> None:
    source = open_video_source(VideoSourceConfig(parse_camera(str(clip))))  # real time is the default
    with source:
        start = time.monotonic_ns()
        frames = [source.read(timeout_s=1.0) for _ in range(N_FRAMES)]
        elapsed_s = (time.monotonic_ns() - start) / 1e9
    assert all(f.ok for f in frames)
    # the last frame is due 24/25 s after the first; pacing sleeps to the media clock
    assert 0.9 <= elapsed_s <= 1.15, elapsed_s
    lateness = [(time.monotonic_ns() - f.t_ns) for f in frames]  # stamps are the scheduled monotonic times
    assert np.all(np.diff([f.t_ns for f in frames]) == FRAME_NS)
    assert max(lateness) < 5e9


def test_real_time_read_times_out_rather_than_blocking(clip: Path) -> None:
    with open_video_source(VideoSourceConfig(parse_camera(str(clip)))) as source:
        assert source.read(timeout_s=1.0).ok  # frame 0 is due at once
        t = time.monotonic()
        early = source.read(timeout_s=0.01)  # frame 1 is due 40 ms after frame 0
        assert early.status is ReadStatus.TIMEOUT and time.monotonic() - t < 0.03
        assert source.read(timeout_s=1.0).ok  # the held frame comes next
        assert source.stats.frames == 2 and source.stats.timeouts == 1


def test_loop_mode_continues_the_timeline(clip: Path) -> None:
    loop = ReplayConfig(realtime=False, loop=True)
    with open_video_source(VideoSourceConfig(parse_camera(str(clip)), replay=loop)) as source:
        frames = [source.read(timeout_s=1.0) for _ in range(2 * N_FRAMES + 5)]
    assert all(f.ok for f in frames)
    assert np.all(np.diff([f.t_ns for f in frames]) == FRAME_NS)  # no jump or repeat at the pass boundaries
    assert np.array_equal(frames[0].image, frames[N_FRAMES].image)
    assert source.stats.passes == 2


def test_frozen_detector_flags_a_repeating_picture_or_a_stuck_clock() -> None:
    detector = FrozenDetector(frozen_after=3)
    a, b = np.zeros((4, 4, 3), np.uint8), np.ones((4, 4, 3), np.uint8)
    assert [detector.update(img) for img in (a, a, a, a, b)] == [False, False, True, True, False]
    detector.reset()
    assert [detector.update(img, 40.0) for img in (a, b, a)] == [False, False, True]


def test_grid_clips_replay_as_cameras(grid_clips: list[Path]) -> None:
    for path in grid_clips[:3]:  # three clips keep this quick on two cores; each is 75 frames
        frames = read_all_video(open_video_source(VideoSourceConfig(parse_camera(str(path)), replay=FAST)))
        assert frames[-1].status is ReadStatus.EOS, path
        good = frames[:-1]
        assert len(good) == 75, path
        assert good[0].image.shape == (288, 360, 3)
        assert np.all(np.diff([f.t_ns for f in good]) == FRAME_NS)
        assert not any(f.frozen for f in good), "a talking face never repeats bit-exactly"


def test_wav_replays_as_16k_mono(wav: Path) -> None:
    fast = ReplayConfig(realtime=False)
    chunks = read_all_audio(open_audio_source(AudioSourceConfig(parse_mic(str(wav)), replay=fast, chunk_s=0.1)))
    assert chunks[-1].status is ReadStatus.EOS
    good = chunks[:-1]
    samples = np.concatenate([c.samples for c in good])
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert abs(samples.size - int(1.5 * SAMPLE_RATE)) <= 16  # resampler edge effects only
    assert all(c.samples.size == 1600 for c in good[:-1])
    assert [c.t_ns for c in good] == [i * 100_000_000 for i in range(len(good))]  # t of each first sample
    spectrum = np.abs(np.fft.rfft(samples[:16_000]))
    assert abs(np.argmax(spectrum) - 440) <= 1  # still a 440 Hz tone at the new rate
    # FFmpeg's stereo->mono downmix (as `ffmpeg -ac 1`, which Whisper uses) is (L + R) / sqrt(2): two 0.5
    # amplitude channels give a 0.707 sine, RMS 0.5; the ASR's own file loader does the same
    assert 0.49 < np.sqrt(np.mean(samples**2)) < 0.51


def test_wav_real_time_pacing_and_loop(wav: Path) -> None:
    source = open_audio_source(AudioSourceConfig(parse_mic(str(wav)), replay=ReplayConfig(loop=True), chunk_s=0.25))
    with source:
        start = time.monotonic_ns()
        chunks = [source.read(timeout_s=1.0) for _ in range(8)]  # 2 s: across the 1.5 s loop boundary
        elapsed_s = (time.monotonic_ns() - start) / 1e9
    assert all(c.ok for c in chunks)
    assert 1.9 <= elapsed_s <= 2.2, elapsed_s  # a chunk is released when its last sample is due
    starts = np.array([c.t_ns for c in chunks])
    assert np.all(starts[1:] == starts[:-1] + np.array([c.samples.size * 62_500 for c in chunks[:-1]]))
    assert source.stats.passes == 1


def test_looping_an_audio_file_starts_no_threads(wav: Path) -> None:
    """Each loop pass decodes with a fresh resampler. PyAV 18.1.1 gave a resampler's filter graph a pool of
    one thread per core, which lived until the cyclic GC freed the graph: a looping `--mic` file gained two
    threads per pass on this machine (the soak test's failure). The runtime's resamplers run on the caller's
    thread."""
    import os

    def threads() -> int:
        return len(os.listdir("/proc/self/task"))

    loop = ReplayConfig(realtime=False, loop=True)
    source = open_audio_source(AudioSourceConfig(parse_mic(str(wav)), replay=loop, chunk_s=0.25))
    with source:
        assert source.read(timeout_s=1.0).ok
        before = threads()
        for _ in range(6 * 6):  # 1.5 s file, 0.25 s chunks: six passes
            assert source.read(timeout_s=1.0).ok
        after = threads()
    assert source.stats.passes >= 5
    assert after <= before, f"{after - before} thread(s) started over {source.stats.passes} loop passes"


def test_grid_audio_track_through_pyav(grid_clips: list[Path]) -> None:
    camera, mic = parse_video_file(str(grid_clips[0]))
    chunks = read_all_audio(open_audio_source(AudioSourceConfig(mic, replay=ReplayConfig(realtime=False))))
    assert chunks[-1].status is ReadStatus.EOS
    samples = np.concatenate([c.samples for c in chunks[:-1]])
    assert abs(samples.size - 3 * SAMPLE_RATE) < 0.05 * SAMPLE_RATE  # 3.0 s clips
    assert np.sqrt(np.mean(samples**2)) > 0.01  # read speech, not silence
    assert camera.path == mic.path
