#!/usr/bin/env python3
"""Streaming ASR against one offline pass on real speech whose words are known (RAVDESS), commit guards off/on.

  python tools/bench_asr_ravdess.py --ravdess ../shared/data/affect/ravdess --per-actor 2 --modes fast realtime
  python tools/bench_asr_ravdess.py --ravdess ../shared/data/affect/ravdess --per-actor 10 --modes fast --json o.json

With `--grid DIR` instead of `--ravdess`, the same on the GRID clips (read speech, six words each; the file
name's words are the reference, tools/_grid.py).

Speech: RAVDESS (16 kHz mono FLAC, `03-01-EE-II-SS-RR-AA.flac`; statement SS 01 = "Kids are talking by the
door", 02 = "Dogs are sitting by the door", the reference). Subset: `--per-actor N` clips of each of the 24
actors, the first N of the actor's clips ordered by sha256(`--seed` + file name) (so emotions, intensities and
statements mix without looking at them); the output states it.

Each clip is played alone, as `qamoe-live --camera none --mic CLIP` plays it: the live audio stage (Silero VAD
speech probability per 0.1 s chunk, edge.pipeline.stages.AudioStage) and the live ASR stage (AsrStage around
`StreamingAsr` with the live decode, `streaming_config`), fresh per clip, the same loaded Whisper for all.
  fast      chunks as fast as they go, fixed 1 s step (the `--fast` replay: no load shedding)
  realtime  chunks at the wall clock's pace (0.1 s of audio per 0.1 s), load shedding on (the real-time runtime;
            a decode that takes longer delays the next chunks, as the ASR queue does)
Each mode runs twice per clip, back to back: commit guards off (`CommitGuardConfig(enabled=False)`, the
behaviour before issue 16) and on (the default), so before/after share the clip and the machine's load. The
baseline is one offline pass per clip (`edge.asr.Transcriber()` defaults: Whisper's long-form decode, VAD on).
`--slow-close` and `--preroll S ...` add settings with one streaming knob changed, guards on, run on the same
clips back to back with the others (a same-run baseline or candidate). `--joined` plays the clips one after
another as one stream (sentence, silence, sentence: an utterance's lead-in may then hold the end of the one
before), scored against the references joined; the offline baseline still decodes each clip alone.

Prints per setting: clips, WER, substitution / deletion / insertion rates (per reference word), the share of
clips whose transcript holds a repeated phrase (a phrase said more often than in the reference, or a word twice
in a row), decodes, the seconds spent in them (wall clock: they move with the machine's load), and the words
each guard dropped. Targets (issue 16): repeated-phrase share 0, insertion rate within 1 point of offline, WER
within 0.03 of offline."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from edge.asr import AsrConfig, Transcriber, load_audio_16k
from edge.asr.guards import RULES, CommitGuardConfig
from edge.asr.streaming import StreamingAsr, StreamingAsrConfig
from edge.asr.transcriber import streaming_config
from edge.asr.wer import EditCounts, edit_counts, repeated_phrase
from edge.features.audio import AudioFeatureExtractor
from edge.pipeline.stages import AsrStage, AudioStage
from edge.sources.types import AudioChunk, ReadStatus
from edge.vocab import NS, SAMPLE_RATE
from tools._grid import grid_sentence

STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
CHUNK_S = 0.1  # the audio file source's chunk (edge.sources.audio.AudioSourceConfig.chunk_s)
GUARDS = {"off": CommitGuardConfig(enabled=False), "on": CommitGuardConfig()}


def reference(clip: Path) -> str:
    """The sentence a RAVDESS file name encodes (field 5, the statement), or a GRID file name (six words)."""
    if clip.suffix == ".mpg":
        return " ".join(grid_sentence(clip))
    parts = clip.stem.split("-")
    if len(parts) != 7 or parts[4] not in STATEMENTS:
        raise SystemExit(f"bench_asr_ravdess: {clip.name} is not a RAVDESS speech file name (03-01-EE-II-SS-RR-AA)")
    return STATEMENTS[parts[4]]


def select(root: Path, per_actor: int, seed: str) -> list[Path]:
    """The first `per_actor` clips of every actor folder, ordered by sha256(seed + file name)."""
    actors = sorted(p for p in root.glob("Actor_*") if p.is_dir())
    if not actors:
        raise SystemExit(f"bench_asr_ravdess: no Actor_NN folders in {root}")
    out = []
    for actor in actors:
        clips = sorted(actor.glob("*.flac"), key=lambda p: hashlib.sha256((seed + p.name).encode()).hexdigest())
        out += clips[:per_actor]
    return out


def describe(clips: list[Path], per_actor: int, seed: str) -> str:
    if clips[0].suffix == ".mpg":
        return f"GRID: {len(clips)} clips (every clip in the folder)"
    emotions = Counter(c.stem.split("-")[2] for c in clips)
    statements = Counter(c.stem.split("-")[4] for c in clips)
    actors = len({c.parent.name for c in clips})
    return (f"subset: --per-actor {per_actor} --seed {seed!r}: {len(clips)} clips of {actors} actors; "
            f"emotions {dict(sorted(emotions.items()))}; statements {dict(sorted(statements.items()))}")  # fmt: skip


@dataclass
class Tally:
    """What one setting heard over the clips."""

    edits: EditCounts = field(default_factory=EditCounts)
    clips: int = 0
    repeated: list[str] = field(default_factory=list)  # "clip: phrase" per clip with a repeated phrase
    decodes: int = 0
    decode_s: float = 0.0  # wall seconds in the Whisper decodes: the compute a setting costs (moves with load)
    dropped: Counter[str] = field(default_factory=Counter)

    def add(self, name: str, ref: str, hyp: str) -> None:
        self.clips += 1
        self.edits = self.edits + edit_counts(ref, hyp)
        phrase = repeated_phrase(ref, hyp)
        if phrase is not None:
            self.repeated.append(f"{name}: {phrase!r} in {hyp!r}")


def streams(clips: list[Path], joined: bool) -> Iterator[tuple[str, str, list[np.ndarray]]]:
    """(name, reference, 16 kHz audio of each clip in it) of each stream to play: every clip alone, or with
    `joined` one stream of all of them one after another."""
    if not joined:
        yield from ((clip.stem, reference(clip), [load_audio_16k(clip)]) for clip in clips)
        return
    refs, audio = zip(*((reference(clip), load_audio_16k(clip)) for clip in clips), strict=True)
    yield f"{len(clips)} clips joined", " ".join(refs), list(audio)


class LivePath:
    """The live ASR path for one clip at a time: the audio stage's VAD probability feeds the ASR stage."""

    def __init__(self) -> None:
        self.whisper = Transcriber(streaming_config(AsrConfig()))
        self.audio = AudioStage(AudioFeatureExtractor())
        self.decode_s = 0.0  # wall seconds spent in the decode so far, every stream together

    def transcribe(self, pcm: Any, t0_ns: int, **kwargs: Any) -> list[Any]:
        t = time.perf_counter()
        try:
            return self.whisper.transcribe(pcm, t0_ns, **kwargs)
        finally:
            self.decode_s += time.perf_counter() - t

    def stream(self, pcm: Any, config: StreamingAsrConfig, realtime: bool) -> tuple[str, StreamingAsr]:
        asr = StreamingAsr(self.transcribe, config)
        stage = AsrStage(asr)
        self.audio.reset()
        n = round(CHUNK_S * SAMPLE_RATE)
        t0, wall0, words = time.monotonic_ns(), time.perf_counter(), []
        for k, i in enumerate(range(0, len(pcm), n)):
            if realtime:  # the chunk exists once its last sample has been "captured"
                time.sleep(max(0.0, wall0 + (i + n) / SAMPLE_RATE - time.perf_counter()))
            chunk = AudioChunk(ReadStatus.OK, pcm[i : i + n], t0 + i * NS // SAMPLE_RATE, k)
            _, speech = self.audio.push(chunk)
            words += stage.push(chunk, speech)
        words += stage.finish()
        if stage.failures:
            print(f"  warning: {stage.failures} failed decodes ({stage.last_error})", file=sys.stderr)
        return " ".join(w.text for w in words), asr


def settings(modes: list[str], flush_silence_s: float | None = None, guards: tuple[str, ...] = tuple(GUARDS),
             slow_close: bool = False, prerolls: tuple[float, ...] = ()
             ) -> dict[str, tuple[StreamingAsrConfig, bool]]:
    """The streaming settings to run, by name. `slow_close` adds, per mode, the close policy before the quick
    close (every utterance closed after `flush_silence_s`, however sure the VAD), guards on; each of `prerolls`
    a setting with that `StreamingAsrConfig.preroll_s` (the lead-in kept before an utterance), guards on."""
    out = {}
    for mode in modes:
        base = StreamingAsrConfig()
        if flush_silence_s is not None:
            base = replace(base, flush_silence_s=flush_silence_s, quick_flush_silence_s=min(
                base.quick_flush_silence_s, flush_silence_s))
        if mode == "fast":  # edge.pipeline.build: a deterministic replay keeps a fixed cadence
            base = replace(base, max_step_s=base.step_s)
        for name in guards:
            out[f"{mode}, guards {name}"] = (replace(base, guards=GUARDS[name]), mode == "realtime")
        if slow_close:
            slow = replace(base, quick_flush_silence_s=base.flush_silence_s, guards=GUARDS["on"])
            out[f"{mode}, guards on, close {base.flush_silence_s} s only (before)"] = (slow, mode == "realtime")
        for preroll in prerolls:
            other = replace(base, preroll_s=preroll, guards=GUARDS["on"])
            out[f"{mode}, guards on, preroll {preroll} s"] = (other, mode == "realtime")
    return out


def row(name: str, t: Tally) -> str:
    e, n = t.edits, max(1, t.edits.reference_words)
    drops = ", ".join(f"{r} {t.dropped[r]}" for r in RULES if t.dropped[r]) or "-"
    decodes = f"{t.decodes} | {t.decode_s:.1f}" if t.decodes else "- | -"
    return (f"| {name} | {t.clips} | {e.errors / n:.3f} | {e.substitutions / n:.3f} | {e.deletions / n:.3f} "
            f"| {e.insertions / n:.3f} | {len(t.repeated)}/{t.clips} ({len(t.repeated) / max(1, t.clips):.1%}) "
            f"| {decodes} | {drops} |")  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    corpus = p.add_mutually_exclusive_group(required=True)
    corpus.add_argument("--ravdess", type=Path, help="the ravdess folder (Actor_NN/*.flac)")
    corpus.add_argument("--grid", type=Path, help="a folder of GRID .mpg clips (every clip; the file name's six "
                        "words are the reference)")
    p.add_argument("--per-actor", type=int, default=2, help="clips per actor (24 actors)")
    p.add_argument("--seed", default="issue16", help="orders each actor's clips (sha256 of seed + name)")
    p.add_argument("--modes", nargs="+", default=["fast", "realtime"], choices=["fast", "realtime"])
    p.add_argument("--flush-silence", type=float, help="StreamingAsrConfig.flush_silence_s (default: the live "
                   "0.8 s); a diagnosis knob: how much of the gap to offline is the utterance closed too early")
    p.add_argument("--guards", nargs="+", default=list(GUARDS), choices=list(GUARDS),
                   help="the guard settings to run (default: off and on)")
    p.add_argument("--slow-close", action="store_true", help="also run the close policy before the quick close "
                   "(StreamingAsrConfig.quick_flush_silence_s = flush_silence_s), guards on, as a same-run baseline")
    p.add_argument("--preroll", type=float, nargs="+", default=[], metavar="S",
                   help="also run StreamingAsrConfig.preroll_s = S (the lead-in kept before an utterance; "
                   f"default {StreamingAsrConfig().preroll_s} s), guards on, per mode: a same-run comparison")
    p.add_argument("--joined", action="store_true", help="play the clips one after another as one stream "
                   "(utterance after utterance), scored against the joined references")
    p.add_argument("--json", type=Path, help="write every clip's transcripts and the totals here")
    p.add_argument("-v", "--verbose", action="store_true", help="print each clip's transcripts as it goes")
    args = p.parse_args()
    if args.per_actor < 1:
        raise SystemExit("bench_asr_ravdess: --per-actor must be >= 1")
    if any(s < 0 for s in args.preroll):
        raise SystemExit("bench_asr_ravdess: --preroll takes seconds >= 0")
    clips = select(args.ravdess, args.per_actor, args.seed) if args.ravdess else sorted(args.grid.glob("*.mpg"))
    if not clips:
        raise SystemExit(f"bench_asr_ravdess: no GRID clips (*.mpg) in {args.grid}")
    offline = Transcriber(AsrConfig())
    live = LivePath()
    runs = settings(args.modes, args.flush_silence, tuple(args.guards), args.slow_close, tuple(args.preroll))
    tallies = {"offline (Transcriber)": Tally(), **{name: Tally() for name in runs}}
    per_clip = []
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    for clip, ref, parts in streams(clips, args.joined):
        # offline decodes each clip alone, joined or not: Whisper's long-form decode of 48 RAVDESS sentences in
        # a row kept 2 to 4 of them (two runs), which is no baseline
        hyps = {"offline (Transcriber)": " ".join(w.text for part in parts for w in offline.transcribe(part, 0))}
        pcm = np.concatenate(parts)
        tallies["offline (Transcriber)"].add(clip, ref, hyps["offline (Transcriber)"])
        for name, (config, realtime) in runs.items():
            spent = live.decode_s
            hyps[name], asr = live.stream(pcm, config, realtime)
            tally = tallies[name]
            tally.decode_s += live.decode_s - spent
            tally.add(clip, ref, hyps[name])
            tally.decodes += asr.stats.transcriptions
            tally.dropped.update(asr.stats.dropped())
        per_clip.append({"clip": clip, "reference": ref, "transcripts": hyps})
        if args.verbose:
            print(clip, json.dumps(hyps), flush=True)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, load avg at the end {os.getloadavg()[0]:.2f}"
    knobs = "" if args.flush_silence is None else f"; streaming flush_silence_s {args.flush_silence}"
    knobs += f"; default preroll_s {StreamingAsrConfig().preroll_s}" if args.preroll else ""
    knobs += "; played joined, as one stream" if args.joined else ""
    print(f"{describe(clips, args.per_actor, args.seed)}{knobs}\nstarted {started}; machine: {machine}\n")
    print("| setting | clips | WER | sub | del | ins | repeated phrase | decodes | decode s | words dropped by guard |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, tally in tallies.items():
        print(row(name, tally))
    for name, tally in tallies.items():
        for line in tally.repeated:
            print(f"  repeated ({name}) {line}")
    if args.json:
        totals = {name: {"clips": t.clips, "edits": vars(t.edits), "repeated": t.repeated, "decodes": t.decodes,
                         "decode_s": t.decode_s, "dropped": dict(t.dropped)}
                  for name, t in tallies.items()}  # fmt: skip
        args.json.write_text(json.dumps({"subset": describe(clips, args.per_actor, args.seed), "machine": machine,
                                         "totals": totals, "clips": per_clip}, indent=1))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
