"""tools/evaluate_affect_live.py's stream: held-out clips joined with silence (or a noise floor) between them, and
their spans; bad options refused with exit 2."""

from __future__ import annotations

import subprocess
import sys
import wave
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from edge.asr import load_audio_16k
from tools.evaluate_affect_live import join_clips, spread

TOOL = Path(__file__).resolve().parents[2] / "tools" / "evaluate_affect_live.py"


def _wav(path: Path, samples: np.ndarray) -> SimpleNamespace:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((samples * 32767).astype("<i2").tobytes())
    return SimpleNamespace(path=path)


def test_clips_are_joined_with_gaps_and_the_noise_floor_covers_the_whole_stream(tmp_path: Path) -> None:
    t = np.arange(8000) / 16000
    clips = [_wav(tmp_path / "a.wav", 0.5 * np.sin(2 * np.pi * 220 * t)),
             _wav(tmp_path / "b.wav", 0.3 * np.sin(2 * np.pi * 440 * t[:4000]))]  # fmt: skip
    spans = join_clips(clips, 4.5, tmp_path / "quiet.wav")
    assert spans == [(4.5, 5.0), (9.5, 9.75)]
    quiet = load_audio_16k(tmp_path / "quiet.wav")
    assert quiet.size == round(16000 * (4.5 + 0.5 + 4.5 + 0.25 + 4.5))
    assert not quiet[: 72000].any() and np.abs(quiet[72000:80000]).max() > 0.45  # digital silence, then clip a
    assert join_clips(clips, 4.5, tmp_path / "noisy.wav", -60.0) == spans
    noisy = load_audio_16k(tmp_path / "noisy.wav")
    gap_rms = float(np.sqrt(np.mean(noisy[:72000] ** 2)))
    assert 0.9e-3 < gap_rms < 1.1e-3  # -60 dBFS
    under = noisy[72000:80000] - quiet[72000:80000]  # the floor is under the speech too
    assert 0.8e-3 < float(np.sqrt(np.mean(under**2))) < 1.2e-3
    again = join_clips(clips, 4.5, tmp_path / "again.wav", -60.0)  # seeded: the same stream every run
    assert again == spans and np.array_equal(load_audio_16k(tmp_path / "again.wav"), noisy)


def test_gain_scales_every_clip_alike_and_clips_at_full_scale(tmp_path: Path) -> None:
    t = np.arange(8000) / 16000
    clips = [_wav(tmp_path / "a.wav", 0.05 * np.sin(2 * np.pi * 220 * t)),
             _wav(tmp_path / "b.wav", 0.5 * np.sin(2 * np.pi * 440 * t))]  # fmt: skip
    spans = join_clips(clips, 4.5, tmp_path / "plain.wav")
    assert join_clips(clips, 4.5, tmp_path / "hot.wav", gain_db=20.0) == spans
    plain, hot = load_audio_16k(tmp_path / "plain.wav"), load_audio_16k(tmp_path / "hot.wav")
    a, b = slice(72000, 80000), slice(152000, 160000)
    np.testing.assert_allclose(hot[a], np.clip(10 * plain[a], -1, 1), atol=2e-3)  # 20 dB = x10 amplitude
    assert np.abs(hot[b]).max() > 0.99 and np.abs(plain[b]).max() < 0.51  # the loud clip hits full scale
    assert not hot[:72000].any()  # the gaps stay silent


def test_bad_gap_and_noise_floor_exit_2_with_one_line(tmp_path: Path) -> None:
    for bad in (["--gap", "2"], ["--noise-floor", "-5"], ["--gain", "60"], ["--in-progress-after", "-1"]):
        run = subprocess.run([sys.executable, str(TOOL), "--affect", str(tmp_path), *bad], capture_output=True,
                             text=True, timeout=60, check=False)  # fmt: skip
        assert run.returncode == 2, run.stderr
        assert bad[0] in run.stderr and "Traceback" not in run.stderr


def test_limit_spreads_the_clips_over_every_speaker_not_a_prefix() -> None:
    clips = [SimpleNamespace(dataset="ravdess", speaker=s, key=f"{s}-{i}") for s in ("19", "20") for i in range(52)]
    clips += [SimpleNamespace(dataset="emodb", speaker="12", key=f"e{i}") for i in range(10)]
    picked = spread(clips, 60)
    ravdess = [c for c in picked if c.dataset == "ravdess"]
    assert len(ravdess) == 60 and len({c.key for c in ravdess}) == 60
    assert sum(c.speaker == "19" for c in ravdess) == 30  # half each, as the speakers hold half each
    assert [c.key for c in picked if c.dataset == "emodb"] == [f"e{i}" for i in range(10)]  # fewer than the limit
    assert spread(clips, None) is clips and len(spread(clips, 1)) == 2
