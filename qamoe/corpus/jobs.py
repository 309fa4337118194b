"""Making planned corpus samples: speech for the transcript, then the live audio and text extractors.

The expensive, deterministic half of tools/build_corpus.py (docs/CORPUS.md); `qamoe.corpus.plan` fixed
everything random beforehand. `make_sample` synthesises a `Plan`'s transcript with its voice
(`qamoe.corpus.synth.synthesize`) and runs `qamoe.corpus.offline.extract_clip` on the speech, with the gold
transcript or the live ASR as text. `run_plans` does that for many plans in this process or in a pool of
spawned worker processes (no inherited ONNX Runtime / CTranslate2 threads), and yields the results in the
order of the plans, so the output is the same with 1 or N workers. A sample that cannot be made (espeak-ng
produces no sound, an extractor rejects the input) is a `SampleResult` with `error` set, never an exception.

Each worker process builds its extractors once (`init_worker`: one ORT thread per model, the ASR on one
thread; two in-process) and keeps them in a process global: the pool's initializer cannot hand it back.

numpy + onnxruntime (through the extractors) only; no torch, no qamoe.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from edge.asr import AsrInputError
from edge.features.audio_quality import AudioInputError
from edge.features.text import TextInputError
from edge.features.visual import VisualInputError
from qamoe.corpus.offline import ASR, ClipReadError, Extractors, extract_clip
from qamoe.corpus.plan import Plan
from qamoe.corpus.raw_corruptions import RawCorruption, corrupt_audio
from qamoe.corpus.synth import SynthError, Voice, synthesize

# What an unreadable or undecodable clip raises: the sample is skipped and reported, never a crash.
CLIP_ERRORS = (ClipReadError, AudioInputError, VisualInputError, TextInputError, AsrInputError)
_IN_PROCESS_ASR_THREADS, _WORKER_ASR_THREADS, _CHUNKSIZE = 2, 1, 2

_EXTRACTORS: Extractors | None = None
J = TypeVar("J")
R = TypeVar("R")


@dataclass(frozen=True)
class SampleJob:
    """What a worker needs of a plan (the vision window stays in the parent)."""

    key: str
    text: str
    voice: Voice
    use_asr: bool
    raw: RawCorruption | None = None  # applied to the speech (audio kinds and asr_noise)
    raw_seed: int = 0

    @classmethod
    def of(cls, plan: Plan) -> SampleJob:
        return cls(plan.row.key, plan.row.text, plan.voice, plan.use_asr, plan.raw, plan.raw_seed)


@dataclass(frozen=True, eq=False)
class SampleResult:
    """A made sample's text and audio streams ((values, mask) each) and timings, or the reason it failed."""

    key: str
    error: str | None = None
    text: tuple[np.ndarray, np.ndarray] | None = None
    audio: tuple[np.ndarray, np.ndarray] | None = None
    transcript: str = ""  # the text the encoder saw (the ASR's words when use_asr)
    speech_s: float = 0.0  # length of the synthesised speech
    window_end_s: float = 0.0
    seconds: float = 0.0  # wall time in the worker
    cpu_s: float = 0.0  # CPU time of the worker process


def init_worker(asr: bool, asr_threads: int, voice_encoder: bool = False) -> None:
    """Build this process's extractors once (one ORT thread each; the ASR on `asr_threads`)."""
    global _EXTRACTORS
    from edge.asr import AsrConfig

    if multiprocessing.parent_process() is not None:  # Ctrl-C reaches the parent, which stops the pool
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # faster-whisper constructs (disabled) tqdm bars, and tqdm's first bar creates a process-shared lock:
        # a named semaphore that a worker stopped by the pool's terminate() never unlinks ("leaked semaphore
        # objects" when a build is interrupted). A worker draws no bars; a thread lock is all it needs.
        from tqdm import tqdm

        tqdm.set_lock(threading.RLock())

    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    # temperature 0 only: Whisper's fallback samples at higher temperatures, which would make the ASR text of
    # a sample differ between builds (the corpus must be the same for the same seed)
    config = AsrConfig(cpu_threads=asr_threads, temperatures=(0.0,))
    _EXTRACTORS = Extractors.create(asr=asr, asr_config=config, voice_encoder=voice_encoder)


def extractors() -> Extractors:
    """This process's extractors, built by `init_worker` (also the initializer of other corpus jobs' pools)."""
    if _EXTRACTORS is None:
        raise RuntimeError("call init_worker in this process first")
    return _EXTRACTORS


def make_sample(job: SampleJob) -> SampleResult:
    """Speech for the text, then the live audio and text extractors (`init_worker` first)."""
    t0, cpu0 = time.perf_counter(), time.process_time()
    try:
        pcm = synthesize(job.text, job.voice)
        if job.raw is not None:
            pcm = corrupt_audio(pcm, job.raw, np.random.default_rng(job.raw_seed))
        clip = extract_clip(None, pcm, ASR if job.use_asr else job.text, spec=extractors().feature_spec(),
                            extractors=extractors())
    except (SynthError, *CLIP_ERRORS) as e:
        return SampleResult(job.key, error=f"{type(e).__name__}: {e}")
    s = clip.streams
    return SampleResult(job.key, text=(s["text"].values, s["text"].mask),
                        audio=(s["audio"].values, s["audio"].mask), transcript=clip.transcript,
                        speech_s=round(pcm.size / 16000, 3), window_end_s=round(clip.stats.window_end_s, 3),
                        seconds=time.perf_counter() - t0, cpu_s=time.process_time() - cpu0)


def run_plans(plans: list[Plan], workers: int, asr: bool, voice_encoder: bool = False) -> Iterator[SampleResult]:
    """Results in the order of `plans` (so shards are the same with 1 or N workers)."""
    yield from run_jobs(make_sample, [SampleJob.of(p) for p in plans], workers, asr, voice_encoder)


def run_jobs(
    fn: Callable[[J], R], jobs: list[J], workers: int, asr: bool, voice_encoder: bool = False
) -> Iterator[R]:
    """`fn` over `jobs`, results in order: in this process (workers 1) or in `workers` spawned processes, each
    with its own extractors (`init_worker`; `fn` reads them with `extractors()`)."""
    if workers == 1:
        init_worker(asr, _IN_PROCESS_ASR_THREADS, voice_encoder)
        yield from map(fn, jobs)
        return
    ctx = multiprocessing.get_context("spawn")  # no inherited ORT / CTranslate2 threads
    pool = ctx.Pool(workers, initializer=init_worker, initargs=(asr, _WORKER_ASR_THREADS, voice_encoder))
    try:
        yield from pool.imap(fn, jobs, chunksize=_CHUNKSIZE)
        pool.close()
        pool.join()  # the workers exit on their own and release what they hold (their semaphores)
    finally:
        pool.terminate()  # on an error or an abandoned generator: stops them; after join(): nothing left to do
        pool.join()
