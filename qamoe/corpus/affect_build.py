"""Real emotional speech through the live path into shards: each clip's audio through the live audio extractor,
its text from the live ASR on that audio (what the runtime would see), vision absent (the clips are audio
only: the live path of `qamoe-live --camera none`). One window per clip, the one that ends with its speech
(`qamoe.corpus.offline.extract_clip`). Labels and splits: `qamoe.corpus.affect`.

What the microphone hears around the clip (`MicContext`). A clip fed alone starts the stream: the window's
early audio slots are masked and the voice encoder's first blocks see less than its 4 s context, as in the
first seconds after `qamoe-live` starts. A microphone that has been open for a while hears something before the
speech, and a real one a noise floor under everything. `lead_in_s` > 0 puts that many seconds of digital
silence before the clip's samples (the gap `tools/evaluate_affect_live.py` plays between clips), so every audio
slot of the window is present and every encoder block has its full context; `noise_floor_dbfs` (lo, hi) adds
white noise over the lead-in and the clip at a level drawn per clip, uniformly in [lo, hi] dBFS RMS, from a hash
of the clip's key (never its label); `speech_level_dbfs` (lo, hi) first scales the clip so its speech level
(`speech_level`: the 90th percentile of its 20 ms frames' RMS) sits at a level drawn the same way, as microphones
at other gains and distances deliver it (docs/CORPUS.md, "Speech level"); `codecs` (names, optional) then sends
the clip through a lossy codec at another sample rate, drawn per clip the same way (`qamoe.corpus.codec`: how a
file or a video's sound track delivers speech). Window and stats times stay in the clip's own time
(docs/CORPUS.md, "Lead-in").

In progress (`cut` (lo, hi), optional): the window ends inside the speech instead of after it, at a fraction of
the speech drawn per clip uniformly in [lo, hi] from a hash of its key, with no words (what the live path
shows while a sentence is being spoken: `qamoe.corpus.offline.OfflineConfig.cut`, docs/CORPUS.md "In progress").

No input depends on the label: the audio is the clip, the text is what the ASR hears in it, vision is masked;
the label only goes into the shard's label column (tests/integration/test_affect_corpus.py).

Output folder (resumable: clips already in a shard are not made again; failures go to skipped.json):
  `<split>-NNNNN.npz`   shards in the corpus format (`shards:OUT` for tools/train.py)
  provenance.jsonl      one line per clip: key, dataset, speaker, emotion, label, split, transcript, window
  extract.json          the options a re-run must match
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.asr import load_audio_16k
from edge.features.spec import FeatureSpec, default_feature_spec
from edge.vocab import SAMPLE_RATE
from qamoe.corpus.affect import AffectClip
from qamoe.corpus.codec import draw_chain, parse_codecs, roundtrip
from qamoe.corpus.extract_io import (
    ShardSet,
    check_run_options,
    load_skipped,
    progress,
    sample_featureset,
    save_skipped,
)
from qamoe.corpus.jobs import CLIP_ERRORS, extractors, run_jobs
from qamoe.corpus.offline import ASR, OfflineConfig, extract_clip
from qamoe.corpus.raw_corruptions import noise_floor
from qamoe.errors import ConfigError
from qamoe.modality import Modality

logger = logging.getLogger(__name__)
PROVENANCE = "provenance.jsonl"


@dataclass(frozen=True, eq=False)
class ClipResult:
    """One clip's three streams ((values, mask) each) and what the ASR heard, or why it failed."""

    key: str
    error: str | None = None
    streams: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
    transcript: str = ""
    window_end_s: float = 0.0
    duration_s: float = 0.0
    seconds: float = 0.0


@dataclass(frozen=True)
class MicContext:
    """What the microphone hears around each clip: `lead_in_s` of silence before it (0: the clip starts the
    stream) and, when `noise_floor_dbfs` = (lo, hi), white noise over both at a level in [lo, hi] dBFS RMS."""

    lead_in_s: float = 0.0
    noise_floor_dbfs: tuple[float, float] | None = None
    speech_level_dbfs: tuple[float, float] | None = None
    codecs: tuple[str, ...] = ()  # () the clip as recorded; else each clip through one of them (qamoe.corpus.codec)

    def __post_init__(self) -> None:
        if self.codecs:
            parse_codecs(",".join(self.codecs))  # a CodecError (ConfigError) names the choices
        if not 0 <= self.lead_in_s <= 30:
            raise ConfigError(f"--lead-in {self.lead_in_s}: use 0 to 30 seconds (4.5 matches the live evaluation)")
        if self.noise_floor_dbfs is not None:
            lo, hi = self.noise_floor_dbfs
            if not -120 <= lo <= hi <= -10:
                raise ConfigError(f"--noise-floor {lo:g}:{hi:g}: use LO:HI dBFS with -120 <= LO <= HI <= -10, "
                                  "e.g. -80:-50")  # fmt: skip
        if self.speech_level_dbfs is not None:
            lo, hi = self.speech_level_dbfs
            if not -70 <= lo <= hi <= -3:
                raise ConfigError(f"--speech-level {lo:g}:{hi:g}: use LO:HI dBFS with -70 <= LO <= HI <= -3, "
                                  "e.g. -50:-10")  # fmt: skip

    @property
    def changes_audio(self) -> bool:
        return (self.lead_in_s > 0 or self.noise_floor_dbfs is not None or self.speech_level_dbfs is not None
                or bool(self.codecs))  # fmt: skip

    def level_dbfs(self, key: str) -> float | None:
        """The clip's noise level: uniform in [lo, hi] from a hash of its key (None without a noise floor)."""
        return None if self.noise_floor_dbfs is None else _uniform(self.noise_floor_dbfs, key, "level")

    def speech_dbfs(self, key: str) -> float | None:
        """The clip's speech level: uniform in [lo, hi] from a hash of its key (None: the clip as recorded)."""
        return None if self.speech_level_dbfs is None else _uniform(self.speech_level_dbfs, key, "speech")

    def codec(self, key: str) -> str | None:
        """The name of the clip's recording chain (None: the clip as recorded)."""
        return draw_chain(key, self.codecs).name if self.codecs else None

    def apply(self, pcm: np.ndarray, key: str) -> np.ndarray:
        """The lead-in's silence, then the clip (16 kHz mono float32; at its drawn speech level, clipped to
        [-1, 1] as a converter does, then through its drawn codec), with the noise floor over both."""
        target = self.speech_dbfs(key)
        if target is not None:
            pcm = np.clip(pcm * np.float32(10 ** ((target - speech_level(pcm)) / 20)), -1.0, 1.0).astype(np.float32)
        if self.codecs:
            pcm = np.clip(roundtrip(pcm, draw_chain(key, self.codecs)), -1.0, 1.0).astype(np.float32)
        out = np.concatenate([np.zeros(round(self.lead_in_s * SAMPLE_RATE), np.float32), pcm])
        level = self.level_dbfs(key)
        if level is not None:
            out = out + noise_floor(out.size, level, np.random.default_rng(int(_digest(key, "noise")[:16], 16)))
        return out

    def options(self) -> dict[str, object]:
        """The run options of a corpus built with it (nothing when it changes nothing, so folders built before
        these options existed resume as they were)."""
        out: dict[str, object] = {}
        if self.lead_in_s:
            out["lead_in_s"] = self.lead_in_s
        if self.noise_floor_dbfs is not None:
            out["noise_floor_dbfs"] = list(self.noise_floor_dbfs)
        if self.speech_level_dbfs is not None:
            out["speech_level_dbfs"] = list(self.speech_level_dbfs)
        if self.codecs:
            out["codecs"] = list(self.codecs)
        return out


def speech_level(pcm: np.ndarray, frame: int = SAMPLE_RATE // 50) -> float:
    """A clip's speech level in dBFS: the 90th percentile of its 20 ms frames' RMS (the loud part of the clip,
    which is its speech for a clip that is mostly speech; -120 for silence)."""
    x = np.asarray(pcm, np.float64)
    if x.size == 0:
        return -120.0
    n = max(1, x.size // frame)
    frames = x[: n * frame].reshape(n, -1) if x.size >= frame else x.reshape(1, -1)
    rms = np.sqrt((frames**2).mean(axis=1))
    return float(20 * np.log10(max(float(np.percentile(rms, 90)), 1e-6)))


def _uniform(bounds: tuple[float, float], key: str, salt: str) -> float:
    lo, hi = bounds
    return lo + (hi - lo) * int(_digest(key, salt)[:8], 16) / 2**32


def _digest(key: str, salt: str) -> str:
    return hashlib.sha256(f"{key}/{salt}".encode()).hexdigest()


@dataclass(frozen=True)
class ClipJob:
    """One clip to make: its file, its key, what the microphone hears around it."""

    path: str
    key: str
    mic: MicContext = MicContext()
    cut: tuple[float, float] | None = None  # draw the window's end inside the speech (module docstring)


def make_clip(job: ClipJob) -> ClipResult:
    """The clip's window through the live extractors (`init_worker(asr=True, ...)` first)."""
    t0 = time.perf_counter()
    try:
        audio = job.mic.apply(load_audio_16k(job.path), job.key) if job.mic.changes_audio else job.path
        config = None if job.cut is None else OfflineConfig(cut=cut_fraction(job.cut, job.key))
        clip = extract_clip(None, audio, ASR, spec=extractors().feature_spec(), extractors=extractors(),
                            config=config)  # fmt: skip
    except CLIP_ERRORS as e:
        return ClipResult(job.key, error=f"{type(e).__name__}: {e}")
    streams = {name: (s.values, s.mask) for name, s in clip.streams.items()}
    return ClipResult(job.key, streams=streams, transcript=clip.transcript,
                      window_end_s=round(clip.stats.window_end_s - job.mic.lead_in_s, 3),
                      duration_s=round(clip.stats.duration_s - job.mic.lead_in_s, 3),
                      seconds=time.perf_counter() - t0)  # fmt: skip


def cut_fraction(cut: tuple[float, float], key: str) -> float:
    """Where in its speech a clip's in-progress window ends: uniform in [lo, hi] from a hash of its key."""
    return _uniform(cut, key, "cut")


def run_clips(clips: list[AffectClip], workers: int, voice_encoder: bool = False,
              mic: MicContext = MicContext(), cut: tuple[float, float] | None = None) -> Iterator[ClipResult]:
    """Results in the order of `clips` (shards are the same with 1 or N workers)."""
    jobs = [ClipJob(str(c.path), c.key, mic, cut) for c in clips]
    yield from run_jobs(make_clip, jobs, workers, True, voice_encoder)


def build(clips: list[AffectClip], out: Path, *, workers: int, limit: int | None, options: dict,
          shard_size: int, checkpoint_every: int, created_by: str, spec: FeatureSpec | None = None,
          mic: MicContext = MicContext(), cut: tuple[float, float] | None = None) -> dict[str, int]:
    """Make the clips not yet in a shard of `out` (at most `limit` this run); returns counts made/skipped/done."""
    out.mkdir(parents=True, exist_ok=True)
    check_run_options(out, {**options, **mic.options(), **({} if cut is None else {"cut": list(cut)})})
    spec = spec if spec is not None else default_feature_spec()
    shards = ShardSet(out, spec, shard_size=shard_size, checkpoint_every=checkpoint_every,
                      created_by=created_by)  # fmt: skip
    skipped = load_skipped(out)
    todo = [c for c in clips if c.key not in shards.done and c.key not in skipped]
    done_before = len(clips) - len(todo)
    todo = todo[:limit] if limit is not None else todo
    logger.info("%d clip(s) to make (%d already made or skipped)", len(todo), done_before)
    by_key = {c.key: c for c in todo}
    made = 0
    try:
        with (out / PROVENANCE).open("a", encoding="utf-8") as prov, \
                progress(run_clips(todo, workers, spec.voice_encoder, mic, cut), total=len(todo), unit="clip") as results:
            for r in results:
                clip = by_key[r.key]
                if r.error is not None or r.streams is None:
                    skipped[r.key] = {"id": r.key, "path": str(clip.path), "reason": r.error or "no streams"}
                    logger.warning("skipped %s: %s", r.key, r.error)
                    continue
                streams = {Modality(name): vm for name, vm in r.streams.items()}
                shards.add(clip.split, sample_featureset(streams, clip.label, clip.key))
                prov.write(json.dumps({
                    "id": clip.key, "dataset": clip.dataset, "speaker": clip.speaker, "emotion": clip.emotion,
                    "label": clip.label, "split": clip.split, "transcript": r.transcript,
                    "window_end_s": r.window_end_s, "duration_s": r.duration_s, "seconds": round(r.seconds, 3),
                    **({} if (level := mic.level_dbfs(clip.key)) is None else {"noise_floor_dbfs": round(level, 2)}),
                    **({} if (speech := mic.speech_dbfs(clip.key)) is None else {"speech_level_dbfs": round(speech, 2)}),
                    **({} if (codec := mic.codec(clip.key)) is None else {"codec": codec}),
                    **({} if cut is None else {"cut": round(cut_fraction(cut, clip.key), 3)}),
                }) + "\n")  # fmt: skip
                made += 1
    finally:
        shards.flush()
        save_skipped(out, skipped)
    return {"made": made, "skipped": len(skipped), "done_before": done_before}
