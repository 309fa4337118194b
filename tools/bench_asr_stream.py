#!/usr/bin/env python3
"""What one streaming decode costs: the live ASR settings against Whisper's own, in one run, on looped speech.

  python tools/bench_asr_stream.py --grid ../shared/media/grid [--loops 3]

The 11 GRID clips (../shared/media/grid) joined and repeated `--loops` times (~33 s per loop) are fed to
`edge.asr.StreamingAsr` in 0.2 s chunks as fast as it goes (its default 1 s step), once per setting:
  whisper   Whisper's temperature fallback (0.0 ... 1.0), no cap on new tokens (faster-whisper's behaviour)
  cap       the same with the live token cap (AsrConfig.max_tokens_per_s = 8)
  live      the live pipeline's settings: greedy only (temperature 0) and the token cap
Prints per setting the number of decodes, their total / median / p95 / max seconds and the words committed.
Looping matters: the committed text becomes the next decodes' prompt, and repeated or grammar-like text is where
decodes start to loop (docs/RELIABILITY.md, the soak). The max is what stalls a real-time ASR."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from edge.asr import AsrConfig, Transcriber
from edge.asr.audio_file import load_audio_16k
from edge.asr.streaming import StreamingAsr

SETTINGS = {
    "whisper": AsrConfig(max_tokens_per_s=None),
    "cap": AsrConfig(),
    "live": AsrConfig(temperatures=(0.0,)),
}
CHUNK = 3200  # 0.2 s at 16 kHz, as the live audio thread delivers it


def run(config: AsrConfig, pcm: np.ndarray) -> tuple[np.ndarray, int]:
    transcriber = Transcriber(config)
    times: list[float] = []

    def timed(buf: np.ndarray, t0_ns: int, prompt: str | None = None) -> list:  # type: ignore[type-arg]
        start = time.perf_counter()
        try:
            return transcriber.transcribe(buf, t0_ns, prompt=prompt)
        finally:
            times.append(time.perf_counter() - start)

    asr = StreamingAsr(timed)
    words = 0
    for i in range(0, len(pcm), CHUNK):
        asr.insert_audio(pcm[i : i + CHUNK], i * 1_000_000_000 // 16_000, None)
        words += len(asr.process())
    words += len(asr.finish())
    return np.array(times), words


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grid", type=Path, required=True, help="a folder of GRID .mpg clips")
    p.add_argument("--loops", type=int, default=3)
    args = p.parse_args()
    clips = sorted(args.grid.glob("*.mpg"))
    if not clips:
        print(f"bench_asr_stream: no GRID .mpg clips in {args.grid}", file=sys.stderr)
        return 2
    pcm = np.tile(np.concatenate([load_audio_16k(c) for c in clips]), args.loops)
    print(f"{len(clips)} GRID clips x {args.loops} loops = {len(pcm) / 16000:.0f} s of speech, 1 s streaming step")
    print("| setting | decodes | total s | RTF | median s | p95 s | max s | words |")
    print("|---|---|---|---|---|---|---|---|")
    for name, config in SETTINGS.items():
        t, words = run(config, pcm)
        print(f"| {name} | {len(t)} | {t.sum():.1f} | {t.sum() / (len(pcm) / 16000):.2f} | {np.median(t):.2f} "
              f"| {np.quantile(t, 0.95):.2f} | {t.max():.2f} | {words} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
