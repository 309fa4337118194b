"""Audio extractor on real signals: tones, white noise, silence, synthesised speech (espeak-ng) and, where
`../shared` exists, a GRID corpus clip with word timings. No mocks: the Silero VAD is the real ONNX model."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from edge.features import AudioFeatureConfig, AudioFeatureExtractor, AudioFrames, AudioInputError, to_mono_16k
from edge.features.audio_config import AUDIO_FEATURE_NAMES, AudioConfigError
from edge.features.audio_quality import SnrTracker
from edge.features.vad import VadModelError, default_vad_model_path

SR = 16_000
SENTENCE = "The quick brown fox jumps over the lazy dog. I am really happy with how this turned out today."
GRID_CLIP = "id2_vcd_swwp2s.mpg"  # word timings in swwp2s.align, in 1/25000 s


@pytest.fixture(scope="module", params=["compiled-dsp", "numpy-dsp"])
def extractor(request: pytest.FixtureRequest) -> AudioFeatureExtractor:
    """Every behaviour below holds for both DSP implementations: the compiled one the runtime uses where
    `tools/build_engine.py` built it, and the numpy reference (tests/integration/test_audio_native.py compares them)."""
    try:
        default_vad_model_path()
    except VadModelError as exc:
        pytest.skip(f"Silero VAD unavailable: {exc}")
    if request.param == "numpy-dsp":
        return AudioFeatureExtractor(native_dsp=False)
    ours = AudioFeatureExtractor()
    if ours.dsp_library is None:
        pytest.skip("audio-dsp not built: run `python tools/build_engine.py` (tools/run_tests.sh does; needs cc)")
    return ours


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """A sentence synthesised by espeak-ng, at 16 kHz, with 0.5 s of digital silence either side."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("espeak-ng not installed (apt-get install -y espeak-ng): it synthesises the speech clip")
    path = tmp_path_factory.mktemp("speech") / "sentence.wav"
    subprocess.run([exe, "-w", str(path), SENTENCE], check=True, capture_output=True)
    with wave.open(str(path)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16).reshape(-1, w.getnchannels())
        rate = w.getframerate()
    pad = np.zeros(SR // 2, np.float32)
    return np.concatenate([pad, to_mono_16k(pcm, rate), pad])


@pytest.fixture(scope="module")
def grid(shared_dir: Path) -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    """The GRID clip's audio (decoded by PyAV, converted by `to_mono_16k`) and its word timings in seconds."""
    av = pytest.importorskip("av", reason="PyAV (installed with faster-whisper) decodes the GRID clip")
    media = shared_dir / "media" / "grid"
    with av.open(str(media / GRID_CLIP)) as container:
        stream = container.streams.audio[0]
        planes = [frame.to_ndarray() for frame in container.decode(stream)]
        rate = stream.rate
    pcm = np.concatenate(planes, axis=1).T  # planar s16 (channels, n) -> (n, channels)
    words = []
    for line in (media / "swwp2s.align").read_text().split("\n"):
        if line.strip():
            start, end, word = line.split()
            words.append((int(start) / 25_000, int(end) / 25_000, word))
    return to_mono_16k(pcm, rate), words


def _tone(freq: float, seconds: float = 1.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq * t + 0.3)).astype(np.float32)


def _white(seconds: float, rms: float, seed: int = 0) -> np.ndarray:
    return (rms * np.random.default_rng(seed).standard_normal(int(seconds * SR))).astype(np.float32)


def _mix_at_snr(clean: np.ndarray, snr_db: float, seed: int = 1) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(clean.shape[0])
    noise *= math.sqrt(np.mean(clean.astype(np.float64) ** 2) / np.mean(noise ** 2) / 10 ** (snr_db / 10))
    return (clean + noise).astype(np.float32)


def test_columns_and_frame_geometry(extractor: AudioFeatureExtractor) -> None:
    audio = _white(1.01, 0.05)
    frames = extractor.extract(audio, t0_ns=5_000)
    assert extractor.names == AUDIO_FEATURE_NAMES == frames.names
    assert len(AUDIO_FEATURE_NAMES) == 22 and AUDIO_FEATURE_NAMES[:2] == ("mfcc_0", "mfcc_1")
    assert frames.values.shape == (math.ceil(audio.shape[0] / 640), 22)
    assert frames.values.dtype == np.float32 and np.all(np.isfinite(frames.values))
    np.testing.assert_array_equal(frames.t_ns, 5_000 + 40_000_000 * np.arange(len(frames)))


@pytest.mark.parametrize("freq", [65.0, 110.0, 220.0, 380.0])
def test_tone_gives_its_f0_and_is_voiced(extractor: AudioFeatureExtractor, freq: float) -> None:
    frames = extractor.extract(_tone(freq), 0)
    inner = slice(2, -2)  # the first/last frames see the tone's abrupt edges
    f0_hz = 100.0 * 2.0 ** (frames.column("f0_st")[inner] / 12.0)
    np.testing.assert_allclose(f0_hz, freq, rtol=0.02)
    assert np.all(frames.column("voiced")[inner] == 1.0)
    assert np.all(frames.column("voicing_prob")[inner] > 0.9)


def test_white_noise_is_unvoiced_with_low_speech_probability(extractor: AudioFeatureExtractor) -> None:
    frames = extractor.extract(_white(3.0, 0.1), 0)
    assert frames.column("voiced").mean() < 0.05
    assert frames.column("vad_speech_prob").max() < 0.3
    assert abs(frames.column("zcr").mean() - 0.5) < 0.05  # white noise changes sign half the time
    assert np.all(frames.column("snr_db") < 3.0)  # no speech above the floor


def test_silence_has_no_speech(extractor: AudioFeatureExtractor) -> None:
    frames = extractor.extract(np.zeros(2 * SR, np.float32), 0)
    assert frames.column("vad_speech_prob").max() < 0.1
    assert np.all(frames.column("voiced") == 0) and np.all(frames.column("f0_st") == 0)
    assert np.all(frames.column("log_energy_db") == -100.0)
    assert np.all(frames.column("clip_frac") == 0) and np.all(frames.column("snr_db") == -10.0)


def test_speech_has_high_speech_probability_where_spoken(
    extractor: AudioFeatureExtractor, speech: np.ndarray
) -> None:
    frames = extractor.extract(speech, 0)
    vad = frames.column("vad_speech_prob")
    loud = frames.column("log_energy_db") > -35.0
    assert loud.mean() > 0.4
    assert vad[loud].mean() > 0.8
    assert vad[:10].max() < 0.2 and vad[-8:].max() < 0.2  # the 0.5 s silent padding
    voiced = frames.column("voiced") > 0.5
    assert voiced[loud].mean() > 0.3
    assert 70.0 < 100.0 * 2.0 ** (np.median(frames.column("f0_st")[voiced]) / 12.0) < 250.0


@pytest.mark.shared
def test_grid_speech_probability_follows_word_timings(extractor: AudioFeatureExtractor, grid: tuple) -> None:
    audio, words = grid
    frames = extractor.extract(audio, 0)
    centre = (np.arange(len(frames)) + 0.5) * 0.04
    spoken = np.zeros(len(frames), bool)
    for start, end, word in words:
        if word != "sil":
            spoken |= (centre > start + 0.04) & (centre < end - 0.04)
    lead_silence = centre < words[0][1] - 0.1
    vad = frames.column("vad_speech_prob")
    assert vad[spoken].mean() > 0.7
    assert vad[lead_silence].mean() < 0.3


@pytest.mark.parametrize("clip", ["espeak", pytest.param("grid", marks=pytest.mark.shared)])
def test_white_noise_at_0db_lowers_snr_estimate(
    extractor: AudioFeatureExtractor, request: pytest.FixtureRequest, clip: str
) -> None:
    clean = request.getfixturevalue("speech") if clip == "espeak" else request.getfixturevalue("grid")[0]
    snr_clean = np.median(extractor.extract(clean, 0).column("snr_db"))
    snr_noisy = np.median(extractor.extract(_mix_at_snr(clean, 0.0), 0).column("snr_db"))
    assert snr_noisy < snr_clean - 10.0
    assert -5.0 < snr_noisy < 10.0


def test_snr_tracker_matches_a_direct_window_computation() -> None:
    rng = np.random.default_rng(3)
    n_hops, history = 32 * 40, 300  # 12.8 s: the window fills, then slides
    power = rng.uniform(1e-4, 1e-3, n_hops) * np.where(rng.random(n_hops) < 0.5, 30.0, 1.0)
    speech = power > 2e-3
    tracker = SnrTracker(history_hops=history, hops_per_frame=4)
    got = np.concatenate([tracker.update(power[i:i + 32], speech[i:i + 32]) for i in range(0, n_hops, 32)])
    expected = []
    for end in range(4, n_hops + 1, 4):
        window, flags = power[max(0, end - history):end], speech[max(0, end - history):end]
        ordered = np.sort(window)
        noise = ordered[int(0.10 * (len(window) - 1))]
        signal = window[flags].mean() if flags.sum() >= 10 else ordered[int(0.95 * (len(window) - 1))]
        expected.append(min(max(10 * math.log10(max(signal / noise - 1, 0.1)), -10.0), 60.0))
    np.testing.assert_allclose(got, expected, rtol=1e-9)


def test_clipping_fraction_rises_on_clipped_signal(
    extractor: AudioFeatureExtractor, speech: np.ndarray
) -> None:
    clean = extractor.extract(speech, 0).column("clip_frac")
    clipped = extractor.extract(np.clip(4.0 * speech, -1.0, 1.0), 0).column("clip_frac")
    assert clean.max() == 0.0
    assert clipped.mean() > 0.01 and np.all(clipped >= clean)


def test_streaming_equals_offline(extractor: AudioFeatureExtractor, speech: np.ndarray) -> None:
    offline = extractor.extract(speech, t0_ns=123_456_789)
    rng = np.random.default_rng(7)
    extractor.reset()
    popped: list[AudioFrames] = []
    pos, first = 0, True
    while pos < speech.shape[0]:
        size = int(rng.choice([0, 1, 37, 512, 640, 1999, 4096]))
        extractor.push(speech[pos:pos + size], t_ns=123_456_789 if first else None)
        first, pos = False, pos + size
        ready = extractor.ready()
        out = extractor.pop()
        assert len(out) == ready
        popped.append(out)
    extractor.finish()
    popped.append(extractor.pop())
    np.testing.assert_array_equal(np.concatenate([p.t_ns for p in popped]), offline.t_ns)
    assert np.array_equal(np.concatenate([p.values for p in popped]), offline.values)


def test_gain_moves_only_mfcc_0_and_energy(extractor: AudioFeatureExtractor) -> None:
    audio = _white(1.0, 0.05)
    base, loud = extractor.extract(audio, 0), extractor.extract(4.0 * audio, 0)
    mfcc = [f"mfcc_{i}" for i in range(13)]
    cols = [AUDIO_FEATURE_NAMES.index(n) for n in mfcc]
    # log-mel bands all shift by ln(16); the orthonormal DCT puts that into c0 only: sqrt(40) ln 16
    c0_shift = loud.values[:, cols[0]] - base.values[:, cols[0]]
    np.testing.assert_allclose(c0_shift, math.sqrt(40) * math.log(16), atol=1e-3)
    np.testing.assert_allclose(loud.values[:, cols[1:]], base.values[:, cols[1:]], atol=1e-3)
    energy_shift = loud.column("log_energy_db") - base.column("log_energy_db")
    np.testing.assert_allclose(energy_shift, 20 * math.log10(4), atol=1e-3)


def test_clock_jump_reanchors_timestamps(extractor: AudioFeatureExtractor) -> None:
    audio = _white(1.28, 0.05)
    extractor.reset()
    extractor.push(audio[:10240], t_ns=0)  # 640 ms
    extractor.push(audio[10240:], t_ns=640_000_000 + 10**9)  # one second of audio was lost upstream
    extractor.finish()
    frames = extractor.pop()
    assert extractor.clock_resyncs >= 1
    np.testing.assert_array_equal(frames.t_ns[:16], 40_000_000 * np.arange(16))
    np.testing.assert_array_equal(frames.t_ns[16:], 10**9 + 40_000_000 * np.arange(16, 32))


def test_push_rejects_misuse(extractor: AudioFeatureExtractor) -> None:
    extractor.reset()
    with pytest.raises(AudioInputError, match="t_ns"):
        extractor.push(np.zeros(10, np.float32))
    with pytest.raises(AudioInputError, match="to_mono_16k"):
        extractor.push(np.zeros(10), t_ns=0)
    extractor.finish()
    with pytest.raises(AudioInputError, match="reset"):
        extractor.push(np.zeros(10, np.float32), t_ns=0)


@pytest.mark.parametrize(
    ("overrides", "hint"),
    [
        ({"sample_rate": 44_100}, "to_mono_16k"),
        ({"block_frames": 3}, "multiple of 4"),
        ({"f0_min_hz": 500.0}, "f0_min_hz"),
        ({"clip_level": 1.5}, "clip_level"),
        ({"hop_s": 0.0101}, "hop_s"),
        ({"n_mfcc": 41}, "n_mfcc"),
    ],
)
def test_config_rejects_bad_values(overrides: dict, hint: str) -> None:
    with pytest.raises(AudioConfigError, match=hint):
        AudioFeatureConfig(**overrides)


def test_to_mono_16k_rejects_unsupported_input() -> None:
    with pytest.raises(AudioInputError, match="sample rate"):
        to_mono_16k(np.zeros(100, np.float32), 0)
    with pytest.raises(AudioInputError, match="3 channels"):
        to_mono_16k(np.zeros((100, 3), np.float32), 16_000)
    with pytest.raises(AudioInputError, match="NaN"):
        to_mono_16k(np.array([0.0, np.nan]), 16_000)


def test_to_mono_16k_downmixes_scales_and_resamples() -> None:
    stereo = np.stack([np.full(8, 16384, np.int16), np.zeros(8, np.int16)], axis=1)
    np.testing.assert_allclose(to_mono_16k(stereo, 16_000), 0.25)  # int16 -> [-1, 1), then the channel mean
    t = np.arange(44_100) / 44_100
    out = to_mono_16k(0.5 * np.sin(2 * np.pi * 1000.0 * t), 44_100)
    assert out.shape == (16_000,) and out.dtype == np.float32
    inner = out[1000:-1000]  # away from the zero-padded ends
    ref = 0.5 * np.sin(2 * np.pi * 1000.0 * np.arange(16_000) / 16_000)[1000:-1000]
    assert np.max(np.abs(inner - ref)) < 1e-3
    # content above the new Nyquist is removed, not aliased
    alias = to_mono_16k(0.5 * np.sin(2 * np.pi * 12_000.0 * t), 44_100)[1000:-1000]
    assert np.sqrt(np.mean(alias ** 2)) < 1e-3


def test_importing_edge_features_does_not_import_torch() -> None:
    code = "import sys, edge.features; assert 'torch' not in sys.modules, 'edge.features imported torch'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


def test_vad_model_is_the_built_rewrite_else_the_wheel_graph_and_a_corrupt_one_is_refused(
    tmp_path: Path,
) -> None:
    from edge.assets import default_engines_dir
    from edge.features.vad import VAD_ARTIFACT, SileroVad, resolve_vad_model
    from edge.manifest import MANIFEST_NAME, Manifest, load_manifest, write_manifest

    built = default_engines_dir()
    manifest = load_manifest(built / MANIFEST_NAME, missing_ok=True)
    if VAD_ARTIFACT not in manifest.names():
        pytest.skip("engines not built: run `python tools/build_engine.py` (tools/run_tests.sh does)")
    assert resolve_vad_model(tmp_path) == default_vad_model_path()  # no manifest: the wheel's own graph
    artifact = manifest.get(VAD_ARTIFACT)
    copy = tmp_path / artifact.path
    copy.parent.mkdir(parents=True)
    copy.write_bytes((built / artifact.path).read_bytes())
    write_manifest(Manifest(artifacts=(artifact,)), tmp_path / MANIFEST_NAME)
    assert resolve_vad_model(tmp_path) == copy
    assert AudioFeatureExtractor(engines_dir=tmp_path).vad_model_path == copy
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(VadModelError, match="build_engine.py"):
        SileroVad(engines_dir=tmp_path)
