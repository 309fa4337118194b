"""Per-stage cost of the live feature extractors, each beside the reference it replaces, in the same run.

    python tools/bench_features.py                      # every stage
    python tools/bench_features.py --stages audio --repeat 9 --audio talk.wav

Each stage is a function `(args) -> list[Row]` registered in `STAGES`; add a stage by appending to that list.
Times are wall-clock (`time.perf_counter`), the median of `--repeat` runs after one warm-up run; beside each,
the median process CPU time (`time.process_time`).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# One BLAS thread, as in the runtime's workers: on 2 cores a multi-threaded BLAS fights the other stages (and
# here made 640 ms audio blocks 2-3x slower). Set before numpy loads; an explicit environment setting wins.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from edge.features import AudioFeatureConfig, AudioFeatureExtractor, to_mono_16k  # noqa: E402
from edge.features.vad import VAD_CHUNK, SileroVad  # noqa: E402

logger = logging.getLogger("bench_features")
SR = 16_000


@dataclass(frozen=True)
class Row:
    """One printed line: a cost in `unit`, with its target (None: no target) and what it is."""

    stage: str
    what: str
    cost: float | None
    unit: str
    target: float | None = None
    note: str = ""
    cpu: float | None = None


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[argparse.Namespace], list[Row]]


def median_seconds(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median wall time and median process CPU time of `fn` over `repeat` runs, after one warm-up run."""
    fn()
    wall, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


# --- audio ----------------------------------------------------------------------------------------------

def _load_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        if w.getsampwidth() != 2:
            raise SystemExit(f"{path}: only 16-bit PCM WAV is supported here; convert it with sox first")
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16).reshape(-1, w.getnchannels())
        return to_mono_16k(pcm, w.getframerate())


def _test_signal(seconds: float, seed: int = 0) -> np.ndarray:
    """Speech-like test audio: voiced harmonic syllables (F0 glides 90-220 Hz), noise bursts and pauses."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * SR))
    pos = 0
    while pos < out.shape[0]:
        n = int(rng.uniform(0.15, 0.4) * SR)
        t = np.arange(n) / SR
        kind = rng.integers(3)
        if kind == 0:
            f0 = np.linspace(rng.uniform(90, 220), rng.uniform(90, 220), n)
            phase = 2 * np.pi * np.cumsum(f0) / SR
            seg = sum(np.sin(k * phase) / k for k in range(1, 12)) * np.hanning(n)
        elif kind == 1:
            seg = rng.standard_normal(n) * 0.3 * np.hanning(n)
        else:
            seg = np.zeros(n)
        room = out.shape[0] - pos
        out[pos:pos + n] = (0.2 * seg + 0.002 * rng.standard_normal(t.shape[0]))[:room]
        pos += n
    return out.astype(np.float32)


def _librosa_reference(audio: np.ndarray) -> Callable[[], object] | None:
    try:
        import librosa
    except ImportError:
        return None
    y = audio.astype(np.float64)

    def run() -> object:
        mfcc = librosa.feature.mfcc(y=y, sr=SR, n_mfcc=13, n_mels=40, n_fft=512, win_length=400,
                                    hop_length=160)
        f0, voiced, prob = librosa.pyin(y, fmin=60, fmax=400, sr=SR, frame_length=1024, hop_length=160)
        rms = librosa.feature.rms(y=y, frame_length=400, hop_length=160)
        zcr = librosa.feature.zero_crossing_rate(y, frame_length=400, hop_length=160)
        flux = librosa.onset.onset_strength(y=y, sr=SR, n_fft=512, hop_length=160, n_mels=40)
        return mfcc, f0, rms, zcr, flux

    return run


def bench_audio(args: argparse.Namespace) -> list[Row]:
    audio = _load_wav(args.audio) if args.audio else _test_signal(args.seconds)
    seconds = audio.shape[0] / SR
    cfg = AudioFeatureConfig(**({"block_frames": args.block_frames} if args.block_frames else {}))
    extractor = AudioFeatureExtractor(cfg)
    timed = median_seconds(lambda: extractor.extract(audio, 0), args.repeat)
    ours, ours_cpu = (t / seconds * 1e3 for t in timed)

    vad = SileroVad(threads=cfg.vad_threads)
    blocks = audio[: audio.shape[0] // cfg.block_samples * cfg.block_samples].reshape(-1, cfg.block_samples)

    def run_vad() -> None:
        vad.reset()
        for block in blocks:
            vad.process(block)

    vad_cost, vad_cpu = (t / (blocks.size / SR) * 1e3 for t in median_seconds(run_vad, args.repeat))
    block_ms = cfg.block_samples / SR * 1e3
    src = str(args.audio) if args.audio else f"{seconds:.0f} s synthetic speech-like signal"
    rows = [
        Row("audio", f"ours: numpy DSP + Silero VAD (ORT, 1 thread), {block_ms:.0f} ms blocks", ours,
            "ms / s audio", 3.0, src, ours_cpu),
        Row("audio", "  of which Silero VAD alone", vad_cost, "ms / s audio", None,
            f"{cfg.block_samples // VAD_CHUNK} chunks of 32 ms per ORT call", vad_cpu),
    ]
    reference = _librosa_reference(audio)
    if reference is None:
        rows.append(Row("audio", "reference: librosa", None, "ms / s audio", None,
                        "librosa not installed (pip install librosa; it is not a project dependency)"))
        return rows
    ref_cost, ref_cpu = (t / seconds * 1e3 for t in median_seconds(reference, max(1, args.repeat // 3)))
    rows.append(Row("audio", "reference: librosa mfcc + pyin + rms + zcr + onset_strength (no VAD)", ref_cost,
                    "ms / s audio", None, f"ours is {ref_cost / ours:.1f}x faster", ref_cpu))
    return rows


STAGES: list[Stage] = [
    Stage("audio", bench_audio),
]


def _print(rows: list[Row]) -> None:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {platform.machine()} {platform.processor() or ''} cpus={os.cpu_count()} "
          f"load(1 min)={load:.2f} python={platform.python_version()} numpy={np.__version__}")
    for r in rows:
        cost = "n/a" if r.cost is None else f"{r.cost:9.3f}"
        verdict = "ok" if r.cost is not None and r.target is not None and r.cost <= r.target else "MISSED"
        target = "" if r.target is None else f" (target <= {r.target:g}: {verdict})"
        cpu = "" if r.cpu is None else f" [cpu {r.cpu:.3f}]"
        print(f"[{r.stage}] {r.what}: {cost} {r.unit}{cpu}{target}  {r.note}")


def main(argv: list[str] | None = None) -> int:
    names = [s.name for s in STAGES]
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stages", nargs="+", choices=names, default=names)
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per measurement (median reported)")
    parser.add_argument("--audio", type=Path, help="16-bit WAV for the audio stage (default: synthetic)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the synthetic audio")
    parser.add_argument("--block-frames", type=int, help="audio extractor block size in 40 ms frames")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    rows: list[Row] = []
    for stage in STAGES:
        if stage.name in args.stages:
            rows.extend(stage.run(args))
    _print(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
