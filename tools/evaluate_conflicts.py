#!/usr/bin/env python3
"""Words against the face through the live path: what the model reads when the words and the face disagree.

  python tools/evaluate_conflicts.py --affect ../shared/data/affect --engines engines --json out.json
  python tools/evaluate_conflicts.py --affect ../shared/data/affect --engines engines --limit 12   # quick

Issue 15, part 4: "document with measured examples what the model does when words and face/voice conflict
('I hate it' said with a broad smile)". One stream (`qamoe.corpus.conflicts`): FER2013 photos of a split
(default test; hash-split, never by label) in an order hashed from their ids, each placed as a webcam sees a
face (`qamoe.corpus.fer.place`) and held `--hold` seconds, with one sentence spoken over each (espeak-ng:
"I love it. It is wonderful." / "I hate it. It is awful." / "The box is on the table."), chosen by a hash of
the photo's id, never its label, and ending `--tail` seconds before the hold does. The stream is one MP4
(MJPG video at 10 frames per second, AAC speech) replayed three ways by real `qamoe-live --fast` processes,
read by a real ZeroMQ subscriber:

  both            --video-file STREAM            face, voice and words together
  voice + words   --camera none --mic STREAM     the same sentences with no camera
  face only       --camera STREAM --mic none     the same faces with no microphone

Each photo's valence is that of the window ending with its hold (it holds that photo and its sentence alone).
The tables give the mean valence per (words, face expression) cell, with a camera over the photos whose face
the live detector found in that window (BlazeFace finds about 7 in 10 of these photos; the others are a
camera without a face to the model); the face's group comes from its label only after the run (happy; neutral; negative = angry, sad, fear, disgust). `--limit N` takes the N photos with
the smallest id hashes. The voice here is synthetic and says every sentence alike: this measures words
against faces; the voice's own affect (real actors, neutral words) is tools/evaluate_affect_live.py's.

Exit codes: 0 ok, 2 bad options, 3 data unreadable, 1 qamoe-live failed (its error line is printed).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from edge.cli.liverun import LiveRunError
from edge.features.spec import default_feature_spec
from qamoe.corpus.conflicts import (
    SENTENCES,
    ConflictLayout,
    cells,
    face_group,
    format_cells,
    pair_sentence,
    speech_track,
)
from qamoe.corpus.extract_io import run_tool
from qamoe.corpus.fer import read_fer, write_held_video
from qamoe.corpus.live_eval import item_windows, live_eval_parser, play_order, sentiment_windows
from qamoe.corpus.mux import mux
from qamoe.errors import ConfigError

SPEC = default_feature_spec()
FPS = 10
MODES = {"both": ("--video-file",), "voice + words": ("--camera", "none", "--mic"),
         "face only": ("--mic", "none", "--camera")}  # fmt: skip


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = live_eval_parser(__doc__, REPO_ROOT / "engines")
    p.add_argument("--limit", type=int, default=150, help="photos (those with the smallest id hashes)")
    p.add_argument("--hold", type=float, default=ConflictLayout.hold_s, help="seconds each photo is shown")
    p.add_argument("--tail", type=float, default=ConflictLayout.tail_s,
                   help="seconds from each sentence's end to its photo's end")  # fmt: skip
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of: {', '.join(MODES)}")
    p.add_argument("--json", type=Path, help="write each photo's sentence, group and valences here")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> int:
    layout = ConflictLayout(args.hold, args.tail)
    layout.check(SPEC)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if args.limit < 1 or not modes or any(m not in MODES for m in modes):
        raise ConfigError(f"--limit {args.limit} (>= 1), --modes {args.modes!r} (of: {', '.join(MODES)})")
    data = read_fer(args.affect)
    faces = play_order([f for f in data.faces if f.split == args.split])[: args.limit]
    sentence = [pair_sentence(f.key) for f in faces]
    words = [SENTENCES[s][0] for s in sentence]
    groups = [face_group(f.label) for f in faces]
    valence: dict[str, np.ndarray] = {}
    read: dict[str, list] = {}
    with tempfile.TemporaryDirectory() as tmp:
        silent, stream = Path(tmp) / "faces.avi", Path(tmp) / "stream.mp4"
        spans = write_held_video(data, faces, args.hold, silent, FPS)
        mux(silent, speech_track(sentence, layout), stream)
        for mode in modes:
            try:
                windows = sentiment_windows((*MODES[mode], str(stream)), args.engines, 120 + spans[-1][1])
            except LiveRunError as e:
                print(f"qamoe-live failed: {e}", file=sys.stderr)
                return 1
            read[mode] = item_windows(windows, spans, SPEC.hop_s)
    for mode in modes:  # with a camera, only the photos whose face the live detector found count
        camera = mode != "voice + words"
        valence[mode] = np.array([np.nan if w is None or w["valence"] is None
                                  or (camera and not w["modalities"]["vision"]["present"]) else w["valence"]
                                  for w in read[mode]], np.float64)  # fmt: skip
    rows = [c for mode in modes for c in cells(mode, valence[mode], words, groups)]
    print(f"words against faces, FER2013 {args.split}: {len(faces)} photos held {args.hold} s; mean valence (n) "
          "over the photos whose face the live detector found (all photos without a camera)")  # fmt: skip
    print(format_cells(rows))
    if args.json is not None:
        args.json.write_text(json.dumps({
            "split": args.split, "hold_s": args.hold, "tail_s": args.tail, "sentences": dict(SENTENCES),
            "cells": [vars(c) for c in rows],
            "photos": [{"key": f.key, "words": w, "face": g,
                        **{m: None if read[m][i] is None else {k: read[m][i][k] for k in ("valence", "transcript")}
                           | {"face_found": read[m][i]["modalities"]["vision"]["present"]} for m in modes}}
                       for i, (f, w, g) in enumerate(zip(faces, words, groups, strict=True))],
        }, indent=1), encoding="utf-8")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(parse_args, main, sys.argv[1:]))
