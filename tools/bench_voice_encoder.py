#!/usr/bin/env python3
"""What the Whisper encoder columns (edge.features.voice_encoder) would cost live, beside the audio extractor.

  python tools/bench_voice_encoder.py                      # 30 s of a seeded test signal
  python tools/bench_voice_encoder.py --audio talk.wav --seconds 60

Both run over the same audio in the same run, one 320 ms block at a time as the live audio stage feeds them
(one thread each, as in the runtime's workers): the audio extractor's 22 columns (the baseline), and the encoder
columns (one Whisper encoder pass on the last `--context` seconds per block). Printed: per-block wall time
p50 / p95 / max, the share of one core at real time (time per block / 0.32 s), the encoder's cost as a multiple
of the extractor's, and the resident memory the encoder's model adds. The encoder's cost hardly depends on what
the audio says (the encoder runs whole frames whatever they hold), so the default signal needs no media.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # as tools/bench_features.py
    os.environ.setdefault(_var, "1")

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from edge.asr.audio_file import load_audio_16k
from edge.features import AudioFeatureExtractor
from edge.features.voice_encoder import VoiceEncoderColumns, VoiceEncoderConfig

SR = 16_000


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)  # fmt: skip
    p.add_argument("--audio", type=Path, help="a sound file (any rate; default: a seeded test signal)")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--context", type=float, default=4.0, help="seconds encoded per block")
    return p.parse_args(argv)


def test_signal(seconds: float) -> np.ndarray:
    """Seeded noise with a pitched, amplitude-modulated tone in it: audio-like, no media needed."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * SR)) / SR
    tone = 0.2 * np.sin(2 * np.pi * (150 + 30 * np.sin(2 * np.pi * 0.5 * t)) * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return (tone + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


def per_block(run_block, pcm: np.ndarray, block: int) -> np.ndarray:
    times = []
    for b in range(len(pcm) // block):
        t0 = time.perf_counter()
        run_block(pcm[b * block : (b + 1) * block])
        times.append(time.perf_counter() - t0)
    return np.array(times[1:])  # the first block warms up


def main(args: argparse.Namespace) -> int:
    pcm = load_audio_16k(args.audio) if args.audio else test_signal(args.seconds)
    pcm = pcm[: int(args.seconds * SR)]
    extractor = AudioFeatureExtractor()
    block = extractor.config.block_samples
    extractor.reset(0)
    base = per_block(lambda x: (extractor.push(x), extractor.pop()), pcm, block)
    before = rss_mb()
    encoder = VoiceEncoderColumns(VoiceEncoderConfig(context_s=args.context, block_samples=block))
    added = rss_mb() - before
    enc = per_block(encoder.process, pcm, block)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.platform()}; "
          f"load {os.getloadavg()[0]:.1f}; {len(pcm) / SR:.1f} s of "
          f"{args.audio or 'test signal'}, {len(base)} blocks of {block / SR * 1000:.0f} ms")  # fmt: skip
    print("| stage | p50 ms/block | p95 | max | share of one core at real time |")
    print("|---|---|---|---|---|")
    for name, t in (("audio extractor, 22 columns (baseline)", base),
                    (f"Whisper encoder columns, {encoder.dim}, {args.context:g} s context", enc)):  # fmt: skip
        share = float(np.mean(t)) / (block / SR)
        q = np.percentile(t, [50, 95]) * 1000
        print(f"| {name} | {q[0]:.1f} | {q[1]:.1f} | {t.max() * 1000:.1f} | {share:.1%} |")
    print(f"encoder / extractor (mean time per block): {np.mean(enc) / np.mean(base):.2f}x; "
          f"the encoder's model adds {added:.0f} MB resident")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args(sys.argv[1:])))
