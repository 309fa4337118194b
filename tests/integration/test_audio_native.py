"""The compiled audio DSP (`edge/features/native/audio_dsp.c`, built by `tools/build_engine.py --only dsp`)
against its numpy reference: the same features on real clips and on hard synthetic signals, streamed in odd
chunk sizes; how the runtime finds it, and what it refuses. The library is the one the build made here."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge.assets import default_engines_dir
from edge.features import AudioFeatureExtractor
from edge.features.dsp_native import (
    DSP_ARTIFACT,
    DspLibraryError,
    NativeOrderStats,
    load_library,
    resolve_dsp_library,
)
from edge.manifest import MANIFEST_NAME, Manifest, load_manifest, write_manifest
from qamoe.build.dsp import TOLERANCES, check_order_stats
from qamoe.build.vad import parity_streams

GRID = Path(__file__).resolve().parents[3] / "shared" / "media" / "grid"
# per feature column, the largest difference the compiled DSP may make (docs/FEATURES.md); columns not named
# here must agree to 1e-4. F0 and voicing compare frames whose voiced share agrees.
COLUMN_TOL = {f"mfcc_{i}": TOLERANCES["mfcc"] for i in range(13)}


def _built_library() -> Path:
    manifest = load_manifest(default_engines_dir() / MANIFEST_NAME, missing_ok=True)
    if DSP_ARTIFACT not in manifest.names():
        pytest.skip("audio-dsp not built: run `python tools/build_engine.py` (run_tests.sh does; needs cc)")
    return default_engines_dir() / manifest.get(DSP_ARTIFACT).path


@pytest.fixture(scope="module")
def pair() -> tuple[AudioFeatureExtractor, AudioFeatureExtractor]:
    _built_library()
    native = AudioFeatureExtractor(native_dsp=True)
    reference = AudioFeatureExtractor(native_dsp=False)
    assert native.dsp_library is not None and reference.dsp_library is None
    return native, reference


def _compare(
    native: np.ndarray, reference: np.ndarray, names: tuple[str, ...]
) -> tuple[float, dict[str, float]]:
    """(share of frames whose voiced share differs, worst difference per column over the other frames)."""
    assert native.shape == reference.shape
    voiced = names.index("voiced")
    same = native[:, voiced] == reference[:, voiced]
    diff = np.abs(native[same] - reference[same])
    worst = {n: float(diff[:, i].max(initial=0.0)) for i, n in enumerate(names)}
    return 1.0 - float(same.mean()), worst


def _assert_close(flips: float, worst: dict[str, float]) -> None:
    assert flips <= TOLERANCES["voiced_flips"], flips
    bad = {n: w for n, w in worst.items() if w > COLUMN_TOL.get(n, 1e-4)}
    assert not bad, bad


def _stream(extractor: AudioFeatureExtractor, audio: np.ndarray, chunks: np.ndarray) -> np.ndarray:
    extractor.reset(0)
    for part in np.split(audio, np.cumsum(chunks)[:-1]):
        extractor.push(part)
    extractor.finish()
    return extractor.pop().values


def test_the_compiled_dsp_gives_the_numpy_features_on_hard_signals_streamed_in_odd_chunks(pair) -> None:  # type: ignore[no-untyped-def]
    """Harmonic speech-like audio, the same at 0 dB SNR, noise, near-silence and clipping, back to back in one
    stream (the SNR history and the flux's previous frame carry across them), pushed in uneven chunks."""
    native, reference = pair
    audio = np.concatenate(parity_streams(seed=3))
    rng = np.random.default_rng(3)
    chunks = rng.integers(1, 9000, 200)
    chunks = chunks[np.cumsum(chunks) < audio.size]
    chunks = np.append(chunks, audio.size - chunks.sum())
    a = _stream(native, audio, chunks)
    b = _stream(reference, audio, chunks)
    assert a.shape[0] == -(-audio.size // 640)
    _assert_close(*_compare(a, b, native.names))
    # a new stream after reset() starts from a clean state in both
    again = _stream(native, audio[:48_000], np.array([48_000]))
    fresh = AudioFeatureExtractor(native_dsp=True).extract(audio[:48_000])
    np.testing.assert_array_equal(again, fresh.values)


@pytest.mark.shared
def test_the_compiled_dsp_gives_the_numpy_features_on_every_grid_clip(pair) -> None:  # type: ignore[no-untyped-def]
    from edge.asr import load_audio_16k

    clips = sorted(GRID.glob("*.mpg"))
    if not clips:
        pytest.skip(f"GRID clips not found in {GRID}: these tests need ../shared beside the repository")
    native, reference = pair
    worst: dict[str, float] = {}
    flips = 0.0
    for clip in clips:
        audio = load_audio_16k(clip)
        share, diff = _compare(native.extract(audio).values, reference.extract(audio).values, native.names)
        flips = max(flips, share)
        worst = {n: max(worst.get(n, 0.0), d) for n, d in diff.items()}
    _assert_close(flips, worst)


def test_order_statistics_are_exactly_numpys() -> None:
    """The build's check (qamoe/build/dsp.py), on other data: coarser rounding (more ties), a window ending
    at every hop, lengths 1 to 300."""
    stats = NativeOrderStats(load_library(_built_library()), 300)
    check_order_stats(stats, seed=7, n=1000, step=1, decimals=1)
    with pytest.raises(ValueError, match="outside"):
        stats(np.ones(400), np.array([0]), np.array([301]), 0.1, 0.95)


def _engines_with_dsp(tmp_path: Path, **extra: object) -> Path:
    """A private engines dir whose manifest lists only a copy of the built library (extra fields changed)."""
    built = _built_library()
    artifact = load_manifest(default_engines_dir() / MANIFEST_NAME).get(DSP_ARTIFACT)
    if extra:
        import dataclasses

        artifact = dataclasses.replace(artifact, extra={**artifact.extra, **extra})
    copy = tmp_path / artifact.path
    copy.parent.mkdir(parents=True)
    shutil.copy(built, copy)
    write_manifest(Manifest(artifacts=(artifact,)), tmp_path / MANIFEST_NAME)
    return copy


def test_the_runtime_uses_the_listed_library_else_numpy_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    empty = tmp_path / "none"
    empty.mkdir()
    with caplog.at_level(logging.INFO, logger="edge.features.dsp_native"):
        assert resolve_dsp_library(empty) is None
    assert "using the numpy code" in caplog.text and "--only dsp" in caplog.text
    with pytest.raises(DspLibraryError, match="--only dsp"):
        AudioFeatureExtractor(engines_dir=empty, native_dsp=True)
    listed = tmp_path / "listed"
    copy = _engines_with_dsp(listed)
    assert resolve_dsp_library(listed) == copy
    assert AudioFeatureExtractor(engines_dir=listed).dsp_library == copy
    assert AudioFeatureExtractor(engines_dir=listed, native_dsp=False).dsp_library is None


def test_a_library_built_for_a_cpu_with_other_features_is_not_loaded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """-march=native code on a CPU without those instructions would die on SIGILL: numpy, with a warning."""
    from edge.features.cpu_isa import cpu_features

    _, flags = cpu_features()
    _engines_with_dsp(tmp_path, cpu_flags=sorted(flags | {"qamoe_no_such_isa"}))
    with caplog.at_level(logging.WARNING, logger="edge.features.dsp_native"):
        assert resolve_dsp_library(tmp_path) is None
    assert "another CPU" in caplog.text and "qamoe_no_such_isa" in caplog.text
    other = tmp_path / "other"
    _engines_with_dsp(other, machine="riscv128")
    assert resolve_dsp_library(other) is None


def test_a_corrupt_or_foreign_library_is_refused_with_the_rebuild_command(tmp_path: Path) -> None:
    copy = _engines_with_dsp(tmp_path)
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(DspLibraryError, match="build_engine.py"):
        AudioFeatureExtractor(engines_dir=tmp_path)
    candidates = (Path("/lib/x86_64-linux-gnu/libm.so.6"), Path("/usr/lib/libm.so.6"))
    libm = next((p for p in candidates if p.exists()), None)
    if libm is not None:  # a real shared library that is not ours
        with pytest.raises(DspLibraryError, match="not the qamoe audio DSP library"):
            load_library(libm)


def test_the_compiled_dsp_follows_a_non_default_geometry() -> None:
    """Block size, MFCC and mel counts, SNR history and quantile, YIN threshold: all reach the C code."""
    from edge.features import AudioFeatureConfig

    _built_library()
    cfg = AudioFeatureConfig(block_frames=16, n_mfcc=20, n_mels=64, snr_history_s=1.0, snr_noise_quantile=0.2,
                             yin_threshold=0.15)  # fmt: skip
    audio = np.concatenate(parity_streams(seed=5))
    native = AudioFeatureExtractor(cfg, native_dsp=True).extract(audio).values
    reference = AudioFeatureExtractor(cfg, native_dsp=False).extract(audio).values
    assert native.shape == reference.shape == (-(-audio.size // 640), 20 + 9)
    flips, worst = _compare(native, reference, cfg.names)
    assert flips <= TOLERANCES["voiced_flips"]
    assert max(worst[f"mfcc_{i}"] for i in range(20)) <= TOLERANCES["mfcc"]
    assert max(w for n, w in worst.items() if not n.startswith("mfcc")) <= 1e-4, worst


def test_check_reports_a_library_compiled_for_another_cpu(tmp_path: Path) -> None:
    import subprocess
    import sys

    from edge.features.cpu_isa import cpu_features

    _, flags = cpu_features()
    tool = [sys.executable, str(Path(__file__).resolve().parents[2] / "tools" / "build_engine.py"), "--check",
            "--engines-dir", str(tmp_path)]  # fmt: skip
    _engines_with_dsp(tmp_path)
    ok = subprocess.run(tool, capture_output=True, text=True, timeout=120, check=False)
    assert ok.returncode == 0, ok.stderr
    _engines_with_dsp(tmp_path / "x", cpu_flags=sorted(flags | {"qamoe_no_such_isa"}))
    tool[-1] = str(tmp_path / "x")
    bad = subprocess.run(tool, capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode == 1
    assert "audio-dsp: compiled for another CPU" in bad.stderr and "--only dsp" in bad.stderr, bad.stderr
