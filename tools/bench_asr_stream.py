#!/usr/bin/env python3
"""What streaming decodes cost and how well they hear: ASR settings side by side, in one run, on the same speech.

  python tools/bench_asr_stream.py --grid ../shared/media/grid [--loops 2] [--mosi ../shared/data/mosi/label.csv]

Speech: the 11 GRID clips joined and repeated `--loops` times (~33 s per loop; reference = the six words each
file name encodes), and, with `--mosi`, `--sentences` MOSI test transcripts spoken by espeak-ng with 1 s pauses
(reference = the transcripts). Each is fed to `edge.asr.StreamingAsr` in 0.2 s chunks as fast as it goes (1 s
step, its load shedding on), once per setting (`--settings`, default: live bounded):
  whisper   Whisper's temperature fallback (0.0 ... 1.0), no token cap (faster-whisper's behaviour)
  cap       the same with the token cap (AsrConfig.max_tokens_per_s = 8)
  live      greedy only and the token cap; Whisper's 30 s encoder window and its seek loop (before bounded)
  single    `live` + one decode per call without timestamp tokens (edge.asr.bounded), 30 s window
  bounded   `single` + the encoder sees the content + `--pad` s (default 3: the live pipeline's setting)
`--guards on off` runs each setting with the commit guards of edge.asr.guards on and off (default: on only).
Prints per setting and speech: decodes, their total / median / p95 / max seconds, RTF, words committed, and the
WER of the committed text; beside them, the WER of one offline pass (edge.asr.Transcriber defaults) per clip,
and the words the commit guards dropped. Real speech whose words are known, streamed as qamoe-live streams it
and scored against the offline pass clip by clip: tools/bench_asr_ravdess.py.
Looping matters: the committed text becomes the next decodes' prompt, and repeated or grammar-like text is where
decodes start to loop (docs/RELIABILITY.md, the soak). The max is what stalls a real-time ASR."""

from __future__ import annotations

import argparse
import csv
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from edge.asr import AsrConfig, Transcriber
from edge.asr.audio_file import load_audio_16k
from edge.asr.bounded import LIVE_ENCODER_PAD_S
from edge.asr.guards import CommitGuardConfig
from edge.asr.streaming import StreamingAsr, StreamingAsrConfig, StreamingStats
from edge.asr.transcriber import streaming_config
from edge.asr.wer import word_error_rate
from qamoe.corpus.synth import Voice, synthesize
from tools._grid import grid_sentence

SR = 16_000
CHUNK = 3200  # 0.2 s at 16 kHz, as the live audio thread delivers it
GREEDY = AsrConfig(temperatures=(0.0,))


def settings(pad_s: float) -> dict[str, AsrConfig]:
    return {
        "whisper": AsrConfig(max_tokens_per_s=None),
        "cap": AsrConfig(),
        "live": GREEDY,
        "single": replace(GREEDY, single_decode=True),
        "bounded": streaming_config(AsrConfig(single_decode=True, encoder_pad_s=pad_s)),
    }


def grid_speech(folder: Path, loops: int) -> tuple[list[np.ndarray], list[str]]:
    clips = sorted(folder.glob("*.mpg"))
    if not clips:
        raise SystemExit(f"bench_asr_stream: no GRID .mpg clips in {folder}")
    return [load_audio_16k(c) for c in clips] * loops, [" ".join(grid_sentence(c)) for c in clips] * loops


def mosi_speech(label_csv: Path, n: int) -> tuple[list[np.ndarray], list[str]]:
    with label_csv.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["mode"] == "test" and 6 <= len(r["text"].split()) <= 30]
    texts = [r["text"] for r in rows[:: max(1, len(rows) // n)][:n]]
    voice = Voice(name="en-us", variant="m3", rate_wpm=160, pitch=50)
    return [synthesize(t, voice) for t in texts], texts


def stream(config: AsrConfig, pcm: np.ndarray, guards: bool = True) -> tuple[np.ndarray, str, StreamingStats]:
    transcriber = Transcriber(config)
    times: list[float] = []

    def timed(buf: np.ndarray, t0_ns: int, prompt: str | None = None) -> list:  # type: ignore[type-arg]
        start = time.perf_counter()
        try:
            return transcriber.transcribe(buf, t0_ns, prompt=prompt)
        finally:
            times.append(time.perf_counter() - start)

    asr = StreamingAsr(timed, StreamingAsrConfig(guards=CommitGuardConfig(enabled=guards)))
    words = []
    for i in range(0, len(pcm), CHUNK):
        asr.insert_audio(pcm[i : i + CHUNK], i * 1_000_000_000 // SR, None)
        words += asr.process()
    words += asr.finish()
    return np.array(times), " ".join(w.text for w in words), asr.stats


def offline_wer(clips: list[np.ndarray], refs: list[str]) -> float:
    transcriber = Transcriber(AsrConfig())
    hyp = " ".join(" ".join(w.text for w in transcriber.transcribe(c, 0)) for c in clips)
    return word_error_rate(" ".join(refs), hyp)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grid", type=Path, required=True, help="a folder of GRID .mpg clips")
    p.add_argument("--loops", type=int, default=2)
    p.add_argument("--mosi", type=Path, help="MMSA label.csv whose test transcripts espeak-ng speaks")
    p.add_argument("--sentences", type=int, default=30)
    p.add_argument("--settings", nargs="+", default=["live", "bounded"], choices=list(settings(1.0)))
    p.add_argument("--pad", type=float, default=LIVE_ENCODER_PAD_S, help="encoder padding of `bounded`, s")
    p.add_argument("--guards", nargs="+", default=["on"], choices=["on", "off"], help="commit guards on/off")
    args = p.parse_args()
    corpora = {"GRID": grid_speech(args.grid, args.loops)}
    if args.mosi:
        corpora["MOSI/espeak"] = mosi_speech(args.mosi, args.sentences)
    pause = np.zeros(SR, np.float32)
    print("| speech | setting | decodes | total s | RTF | median s | p95 s | max s | words | WER | offline WER "
          "| guard drops |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for corpus, (clips, refs) in corpora.items():
        pcm = np.concatenate([x for c in clips for x in (c, pause)])
        seconds = len(pcm) / SR
        base = offline_wer(clips, refs)
        for name in args.settings:
            for guards in args.guards:
                config = settings(args.pad)[name]
                t, text, stats = stream(config, pcm, guards == "on")
                wer = word_error_rate(" ".join(refs), text)
                drops = ", ".join(f"{k} {v}" for k, v in stats.dropped().items() if v) or "-"
                print(f"| {corpus} {seconds:.0f} s | {name}, guards {guards} | {len(t)} | {t.sum():.1f} "
                      f"| {t.sum() / seconds:.2f} | {np.median(t):.2f} | {np.quantile(t, 0.95):.2f} | {t.max():.2f} "
                      f"| {len(text.split())} | {wer:.3f} | {base:.3f} | {drops} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
