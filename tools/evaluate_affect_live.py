#!/usr/bin/env python3
"""The voice targets of issue 15 through the live path: held-out clips played to `qamoe-live --camera none --mic`.

  python tools/evaluate_affect_live.py --affect ../shared/data/affect --engines engines --json out.json
  python tools/evaluate_affect_live.py --affect ../shared/data/affect --engines engines --limit 20   # quick

The held-out clips of a split (default test: RAVDESS actors 21-24, EmoDB speakers 15-16, speech_va; see
`qamoe.corpus.affect`) are joined into one 16 kHz WAV with `--gap` seconds of silence between them (>= the
window length, so no window holds two clips; `--noise-floor DBFS` adds a microphone's white noise floor to the
whole stream, `--gain DB` plays every clip that much louder or softer, as a microphone at another gain would
deliver it), replayed by one real `qamoe-live --camera none --mic WAV --fast`
process (in an order hashed from the clip ids, never from their labels), and its published sentiment messages
are read by a real ZeroMQ subscriber. Each clip's valence is the
one of the window that ends where the clip ends (the live analogue of the training window, which ends with
the speech); the metrics are `qamoe.corpus.affect_eval`'s. A second table reads the same metrics on the
windows in progress: each clip's mean valence over the windows that end at least `--in-progress-after` seconds
into it and before its last window (the voice heard before the ASR has the words, which come when the VAD
segment closes; `qamoe.corpus.live_eval.in_progress_valence`). Exit codes: 0 ok, 2 bad options, 3 data
unreadable, 1 qamoe-live failed (its error line is printed).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import wave
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from edge.asr import load_audio_16k
from edge.cli.liverun import LiveRunError
from edge.features.spec import default_feature_spec
from edge.vocab import SAMPLE_RATE
from qamoe.corpus.affect import read_clips
from qamoe.corpus.affect_eval import affect_rows, format_rows
from qamoe.corpus.extract_io import run_tool
from qamoe.corpus.live_eval import (
    in_progress_valence,
    item_valence,
    live_eval_parser,
    play_order,
    sentiment_windows,
)
from qamoe.corpus.raw_corruptions import noise_floor
from qamoe.errors import ConfigError

HOP_S = default_feature_spec().hop_s  # qamoe-live's window hop (the engines' feature spec)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = live_eval_parser(__doc__, REPO_ROOT / "engines")
    p.add_argument("--datasets", default="ravdess,emodb,speech_va")
    p.add_argument("--gap", type=float, default=4.5, help="seconds of silence between clips (>= the window)")
    p.add_argument("--noise-floor", type=float, metavar="DBFS",
                   help="add white noise at this RMS level (dBFS, e.g. -60) to the whole stream, gaps and clips: "
                        "a microphone's noise floor instead of digital silence between clips")
    p.add_argument("--gain", type=float, default=0.0, metavar="DB",
                   help="play every clip DB decibels louder (or softer, < 0), clipped to full scale as a converter "
                        "does: a microphone at another gain (RAVDESS speaks at about -30 to -50 dBFS, a close "
                        "headset or GRID's booth at -10)")
    p.add_argument("--limit", type=int, help="at most N clips per corpus (spread over speakers and emotions)")
    p.add_argument("--in-progress-after", type=float, default=1.5, metavar="S",
                   help="windows in progress: those ending at least S seconds into a clip (RAVDESS clips start "
                        "with ~0.5-1 s of silence) and before its last window")
    p.add_argument("--json", type=Path, help="write the rows and each clip's valence here")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def join_clips(clips: list, gap_s: float, path: Path, noise_dbfs: float | None = None,
               gain_db: float = 0.0) -> list[tuple[float, float]]:
    """Write the clips into one mono 16-bit WAV at 16 kHz, `gap_s` of silence before each; their spans (s).
    `noise_dbfs`: white noise of that RMS over the whole stream (seeded, the same whatever the clips' labels);
    `gain_db`: every clip scaled by 10^(gain_db / 20) (the same for every clip, so it carries no label)."""
    gap = np.zeros(round(gap_s * SAMPLE_RATE), np.float32)
    parts, spans, t = [], [], 0.0
    for c in clips:
        pcm = load_audio_16k(c.path) * np.float32(10 ** (gain_db / 20))
        parts += [gap, pcm]
        t += gap.size / SAMPLE_RATE
        spans.append((t, t + pcm.size / SAMPLE_RATE))
        t += pcm.size / SAMPLE_RATE
    parts.append(gap)
    audio = np.concatenate(parts)
    if noise_dbfs is not None:
        audio = audio + noise_floor(audio.size, noise_dbfs, np.random.default_rng(0))
    audio = np.clip(audio, -1.0, 1.0)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes((audio * 32767).astype("<i2").tobytes())
    return spans


def spread(clips: list, limit: int | None) -> list:
    """At most `limit` clips per corpus, evenly spaced over its file order (which runs speaker by speaker, so
    every speaker of the split is sampled; a prefix would be mostly the first speaker)."""
    if limit is None:
        return clips
    out = []
    for d in dict.fromkeys(c.dataset for c in clips):
        mine = [c for c in clips if c.dataset == d]
        picks = np.unique(np.round(np.linspace(0, len(mine) - 1, min(limit, len(mine)))).astype(int))
        out += [mine[i] for i in picks]
    return out


def main(args: argparse.Namespace) -> int:
    if args.gap < 4.0:
        raise ConfigError(f"--gap {args.gap}: use at least the window length (4 s) so no window holds two clips")
    if args.noise_floor is not None and not -120 <= args.noise_floor <= -10:
        raise ConfigError(f"--noise-floor {args.noise_floor}: use a level in dBFS from -120 to -10, e.g. -60")
    if not -40 <= args.gain <= 40:
        raise ConfigError(f"--gain {args.gain}: use -40 to 40 dB, e.g. 20 for a microphone 20 dB hotter")
    if not 0.0 <= args.in_progress_after <= 10.0:
        raise ConfigError(f"--in-progress-after {args.in_progress_after}: use 0 to 10 s, e.g. 1.5")
    clips = [c for c in read_clips(args.affect, args.datasets.split(",")) if c.split == args.split]
    clips = play_order(spread(clips, args.limit))
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "held_out.wav"
        spans = join_clips(clips, args.gap, wav, args.noise_floor, args.gain)
        try:
            windows = sentiment_windows(("--camera", "none", "--mic", str(wav)), args.engines, 60 + 2 * spans[-1][1])
        except LiveRunError as e:
            print(f"qamoe-live failed: {e}", file=sys.stderr)
            return 1
    ids, labels = np.array([c.key for c in clips]), np.array([c.label for c in clips], np.float32)
    valence = item_valence(windows, spans, HOP_S)
    ok = ~np.isnan(valence)
    rows = affect_rows(ids[ok], valence[ok], labels[ok])
    print(format_rows(rows, f"live path, {args.split}: {ok.sum()} of {len(clips)} clips, {len(windows)} windows"))
    inner = in_progress_valence(windows, spans, HOP_S, args.in_progress_after)
    has = ~np.isnan(inner)
    inner_rows = affect_rows(ids[has], inner[has], labels[has])
    print("\n" + format_rows(inner_rows, f"in progress (each clip's windows ending >= {args.in_progress_after:g} s "
                                        f"into it, before its last): {has.sum()} of {len(clips)} clips"))
    if args.json is not None:
        per_clip = [{"id": c.key, "label": c.label, "valence": None if np.isnan(v) else float(v),
                     "in_progress": None if np.isnan(u) else float(u)}
                    for c, v, u in zip(clips, valence, inner, strict=True)]  # fmt: skip
        report = {"split": args.split, "rows": rows, "in_progress_rows": inner_rows, "clips": per_clip}
        args.json.write_text(json.dumps(report, indent=1, default=float) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(parse_args, main, sys.argv[1:]))
