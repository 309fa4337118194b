"""Offline (whole-buffer) speech recognition with faster-whisper: PCM in, timed and scored `Word`s out.

The streaming ASR re-decodes a growing buffer with this class and commits words two passes agree on, so
everything here is stateless per call except the loaded model.

Model. By default the CTranslate2 Whisper tiny.en directory that `tools/build_engine.py` records in
`engines/manifest.json` as `whisper-tiny.en` (sha256-verified on load). `AsrConfig(model=...)` selects any
other faster-whisper model *directory* (e.g. one made with `ct2-transformers-converter`). This runtime never
downloads: a size name such as "base.en" that is not a local directory is an `AsrModelError`, not a fetch.

Decoding. Whisper's own decoding heuristics, applied as Whisper does (temperature fallback) and once more per
segment on the result, because a fallback that ends at the highest temperature keeps its last (bad) decode:
  - no-speech: a segment with no_speech_prob > 0.6 AND avg_logprob < -1.0 is silence that the decoder filled
    with text; it is dropped (Whisper's `no_speech_threshold` / `logprob_threshold` defaults, which OpenAI
    tuned on its long-form evaluation; either cue alone also fires on quiet but real speech);
  - repetition: a segment whose text compresses by more than 2.4x under gzip is a decoding loop ("you you
    you ..."); it is dropped (Whisper's `compression_ratio_threshold`).
Before decoding, Silero VAD (shipped inside the faster-whisper wheel, run offline) removes non-speech, so
silence and steady noise never reach the decoder; timestamps are mapped back to the original audio.

Cost bound. A decode that loops ("you you you ...") runs until Whisper's 448-token context is full before the
repetition rule can drop it, and with temperature fallback it does so up to six times: single decodes of 10-25 s
on a few seconds of speech (docs/BENCHMARKS.md). `max_tokens_per_s` caps the new tokens of one decode at
`rate x seconds of audio + TOKEN_MARGIN` (at most MAX_NEW_TOKENS): 8 per second is about twice fast English
speech (~4 words/s, ~1.3 tokens per word, plus timestamps). A cut-off decode keeps its words; the repetition
and no-speech rules still apply to what it produced.

Streaming. `single_decode` + `encoder_pad_s` (what the live pipeline uses, `streaming_config`):
one decode per call on an encoder window of the buffer plus the padding, no timestamp tokens, no seek into a
remainder. Offline extraction keeps Whisper's long-form loop (whole clips, up to any length).

Time. `transcribe(pcm, t0_ns)` takes the monotonic time (ns) of the first sample; every word's start/end is
t0_ns plus Whisper's word offset (cross-attention alignment, ~20 ms resolution, often +-100 ms in practice).
"""

from __future__ import annotations

import itertools
import logging
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edge.asr.bounded import FRAMES_PER_SECOND, LIVE_ENCODER_PAD_S, WINDOW_FRAMES, bounded_whisper_class
from edge.asr.words import Word
from edge.errors import ModelFault, SourceFault, UsageError
from edge.vocab import NS, SAMPLE_RATE

logger = logging.getLogger(__name__)

DEFAULT_ARTIFACT = "whisper-tiny.en"
_MODEL_FILES = ("model.bin", "config.json")
TOKEN_MARGIN = 16  # tokens allowed beyond rate x duration (timestamps, punctuation, a short buffer's first word)
MAX_NEW_TOKENS = 200  # faster-whisper refuses prompt + new tokens > 448; its prompt is at most 223 tokens


class AsrError(ModelFault, RuntimeError):
    """Base of the ASR model's errors (exit 4); each message names the fix."""


class AsrConfigError(UsageError, ValueError):
    """An invalid `AsrConfig` (`--asr-model ''`, an English-only model asked for another language): a usage
    error (exit 2), so not an `AsrError`; callers that build the ASR catch it by name."""


class AsrModelError(AsrError):
    """The selected model cannot be used (not a local faster-whisper directory, or it fails to load)."""


class AsrInputError(SourceFault, ValueError):
    """The audio handed to `transcribe` is not 1-D finite float PCM at 16 kHz, or a media file has no readable
    audio. The pipeline drops such a buffer and goes on, and the corpus tools skip the clip; one that escaped
    would be bad media from the source, hence exit 3 (the README's "cannot be opened or decoded"), not an
    `AsrError`."""


@dataclass(frozen=True)
class AsrConfig:
    """Model selection and decoding settings. Defaults: Whisper tiny.en, int8 on 2 CPU threads, greedy at
    temperature 0 with Whisper's fallback (the live pipeline turns the fallback off: edge.pipeline.build), at most
    8 new tokens per second of audio, VAD on, Whisper's hallucination thresholds."""

    model: str | None = None  # None: the engines' whisper-tiny.en; else a local faster-whisper model dir
    device: str = "cpu"
    compute_type: str = "int8"
    cpu_threads: int = 2  # this target has 2 cores; 0 lets CTranslate2 choose (4)
    language: str | None = "en"  # None: detect (multilingual models only)
    beam_size: int = 1  # greedy: 5 beams gave the same words on the 11 GRID clips for ~1.4x the time
    temperatures: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    no_speech_threshold: float = 0.6
    logprob_threshold: float = -1.0
    compression_ratio_threshold: float = 2.4
    vad_filter: bool = True
    vad_threshold: float = 0.5
    vad_min_silence_ms: int = 500  # split speech at pauses this long (faster-whisper's 2 s suits long files)
    vad_speech_pad_ms: int = 400
    condition_on_previous_text: bool = False  # each call is a fresh buffer; the streamer passes `prompt`
    max_tokens_per_s: float | None = 8.0  # cap on new tokens per second of audio (module docstring); None: none
    single_decode: bool = False  # one decode, no timestamp tokens, no remainder (edge.asr.bounded); streaming
    encoder_pad_s: float | None = None  # encode content + this much padding (edge.asr.bounded); None: 30 s

    def __post_init__(self) -> None:
        object.__setattr__(self, "temperatures", tuple(float(t) for t in self.temperatures))
        if self.device not in ("cpu", "cuda", "auto"):
            raise AsrConfigError(f"device={self.device!r}: use 'cpu', 'cuda' or 'auto'")
        if self.cpu_threads < 0 or self.beam_size < 1:
            raise AsrConfigError("cpu_threads must be >= 0 (0 = CTranslate2's default) and beam_size >= 1")
        if not self.temperatures or any(not 0.0 <= t <= 1.0 for t in self.temperatures):
            raise AsrConfigError(f"temperatures={self.temperatures}: give one or more values in [0, 1]")
        if not 0.0 <= self.no_speech_threshold <= 1.0 or not 0.0 <= self.vad_threshold <= 1.0:
            raise AsrConfigError("no_speech_threshold and vad_threshold are probabilities: use [0, 1]")
        if self.logprob_threshold > 0 or self.compression_ratio_threshold <= 0:
            raise AsrConfigError("logprob_threshold must be <= 0 and compression_ratio_threshold > 0")
        if self.vad_min_silence_ms < 0 or self.vad_speech_pad_ms < 0:
            raise AsrConfigError("vad_min_silence_ms and vad_speech_pad_ms must be >= 0")
        if self.max_tokens_per_s is not None and not self.max_tokens_per_s > 0:
            raise AsrConfigError(f"max_tokens_per_s={self.max_tokens_per_s}: give a positive rate, or None")
        if self.encoder_pad_s is not None and not (self.single_decode and 0 <= self.encoder_pad_s <= 30):
            raise AsrConfigError(
                f"encoder_pad_s={self.encoder_pad_s}: give 0..30 s together with single_decode=True (a trimmed "
                "window without it lets faster-whisper seek into remainders; edge.asr.bounded), or None"
            )
        if self.model is not None and not str(self.model).strip():
            raise AsrConfigError("model='' : pass None for the built whisper-tiny.en, or a model directory")

    def is_hallucination(self, no_speech_prob: float, avg_logprob: float, compression_ratio: float) -> bool:
        """Whisper's rules for a segment that is not speech (see the module docstring)."""
        silent = no_speech_prob > self.no_speech_threshold and avg_logprob < self.logprob_threshold
        return silent or compression_ratio > self.compression_ratio_threshold


def streaming_config(config: AsrConfig) -> AsrConfig:
    """`config` (an AsrConfig) as the live streaming ASR decodes: greedy only (Whisper's temperature fallback
    re-decodes a failed buffer up to five more times, and samples), one bounded decode per call, and the encoder
    padding `LIVE_ENCODER_PAD_S` unless the config names its own."""
    pad = LIVE_ENCODER_PAD_S if config.encoder_pad_s is None else config.encoder_pad_s
    return replace(config, temperatures=(0.0,), single_decode=True, encoder_pad_s=pad)


def _size_names() -> tuple[str, ...]:
    try:
        from faster_whisper import available_models
    except ImportError:
        return ()
    return tuple(available_models())


def resolve_model_dir(model: str | None, engines_dir: str | os.PathLike[str] | None = None) -> Path:
    """The model directory `AsrConfig.model` names: the verified engines artifact, or a local directory."""
    if model is None:
        from edge.assets import resolve_artifact

        _, path = resolve_artifact(DEFAULT_ARTIFACT, engines_dir)
        return path
    path = Path(model).expanduser()
    if not path.is_dir():
        if str(model) in _size_names():
            raise AsrModelError(
                f"model={model!r} is a Whisper size name, and this runtime never downloads models: pass a "
                "local faster-whisper model directory (e.g. made with `ct2-transformers-converter --model "
                f"openai/whisper-{model} --output_dir DIR --quantization int8`), or leave model unset for "
                "the built whisper-tiny.en (`python tools/build_engine.py`)"
            )
        raise AsrModelError(f"model directory {path} does not exist: pass a local faster-whisper model dir")
    missing = [f for f in _MODEL_FILES if not (path / f).is_file()]
    if missing:
        raise AsrModelError(
            f"{path} is not a CTranslate2 Whisper model directory (missing {', '.join(missing)}): convert "
            "the model with `ct2-transformers-converter` or pass the directory that holds model.bin"
        )
    return path.resolve()


def check_pcm(pcm: Any) -> np.ndarray:
    """`pcm` as contiguous 1-D float32, or AsrInputError saying how to convert it."""
    if not isinstance(pcm, np.ndarray) or pcm.ndim != 1:
        shape = getattr(pcm, "shape", type(pcm).__name__)
        raise AsrInputError(
            f"audio must be a 1-D numpy array of mono samples, got {shape}: "
            "convert with edge.features.to_mono_16k(pcm, sample_rate)"
        )
    if not np.issubdtype(pcm.dtype, np.floating):
        raise AsrInputError(
            f"audio dtype {pcm.dtype}: pass float PCM in [-1, 1] (edge.features.to_mono_16k converts int PCM)"
        )
    out = np.ascontiguousarray(pcm, dtype=np.float32)
    if not np.isfinite(out).all():
        raise AsrInputError("audio contains NaN or inf samples: fix the capture or replace them with zeros")
    return out


class Transcriber:
    """faster-whisper over whole buffers. Not thread-safe: one worker thread owns an instance."""

    def __init__(
        self, config: AsrConfig | None = None, engines_dir: str | os.PathLike[str] | None = None
    ) -> None:
        self.config = config if config is not None else AsrConfig()
        self.model_dir = resolve_model_dir(self.config.model, engines_dir)
        try:
            pad = self.config.encoder_pad_s
            self._model = bounded_whisper_class()(
                str(self.model_dir),
                encoder_pad_frames=None if pad is None else round(pad * FRAMES_PER_SECOND),
                device=self.config.device,
                compute_type=self.config.compute_type,
                cpu_threads=self.config.cpu_threads,
                local_files_only=True,
            )
        except (RuntimeError, ValueError, OSError) as exc:  # CTranslate2 raises these for bad dirs/types
            raise AsrModelError(
                f"faster-whisper cannot load {self.model_dir} ({self.config.device}, "
                f"{self.config.compute_type}): {exc}; rebuild it with `python tools/build_engine.py` or "
                "choose another compute_type"
            ) from exc
        if self.config.language not in (None, "en") and not self._model.model.is_multilingual:
            raise AsrConfigError(f"{self.model_dir} is English-only: set language='en' or another model")
        logger.info("ASR: %s on %s (%s)", self.model_dir.name, self.config.device, self.config.compute_type)

    def transcribe(self, pcm: np.ndarray, t0_ns: int, *, prompt: str | None = None) -> list[Word]:
        """Words heard in `pcm` (mono float32 16 kHz; first sample at monotonic `t0_ns`), in time order.

        `prompt` is earlier text to condition the decoder on (the streamer passes committed words). Segments
        that fail the hallucination rules are dropped; silence gives [].
        """
        audio = check_pcm(pcm)
        if audio.shape[0] < SAMPLE_RATE // 100:  # under 10 ms: nothing Whisper could decode
            return []
        if self.config.single_decode and audio.shape[0] > WINDOW_FRAMES * SAMPLE_RATE // FRAMES_PER_SECOND:
            raise AsrInputError(
                f"single_decode takes at most 30 s of audio, got {audio.shape[0] / SAMPLE_RATE:.1f} s: "
                "cut the buffer (StreamingAsrConfig.max_buffer_s) or use single_decode=False"
            )
        segments, _ = self._model.transcribe(
            audio, initial_prompt=prompt, **self._decode_options(), **self._token_cap(audio.shape[0])
        )
        if self.config.single_decode:
            segments = itertools.islice(segments, 1)  # the generator never decodes a remainder
        return list(self._words(segments, int(t0_ns)))

    def _token_cap(self, n_samples: int) -> dict[str, int]:
        rate = self.config.max_tokens_per_s
        if rate is None:
            return {}
        return {"max_new_tokens": min(MAX_NEW_TOKENS, int(rate * n_samples / SAMPLE_RATE) + TOKEN_MARGIN)}

    def _decode_options(self) -> dict[str, Any]:
        c = self.config
        return {
            "language": c.language,
            "beam_size": c.beam_size,
            "temperature": list(c.temperatures),
            "no_speech_threshold": c.no_speech_threshold,
            "log_prob_threshold": c.logprob_threshold,
            "compression_ratio_threshold": c.compression_ratio_threshold,
            "condition_on_previous_text": c.condition_on_previous_text,
            "without_timestamps": c.single_decode,
            "word_timestamps": True,
            "vad_filter": c.vad_filter,
            "vad_parameters": {
                "threshold": c.vad_threshold,
                "min_silence_duration_ms": c.vad_min_silence_ms,
                "speech_pad_ms": c.vad_speech_pad_ms,
            },
        }

    def _words(self, segments: Iterable[Any], t0_ns: int) -> Iterable[Word]:
        for seg in segments:
            if self.config.is_hallucination(seg.no_speech_prob, seg.avg_logprob, seg.compression_ratio):
                logger.debug(
                    "ASR: dropped segment %r (no_speech %.2f, avg_logprob %.2f, compression %.2f)",
                    seg.text, seg.no_speech_prob, seg.avg_logprob, seg.compression_ratio,
                )
                continue
            for w in seg.words or ():
                if w.word.strip():
                    yield _word(w, seg, t0_ns)


def _word(w: Any, seg: Any, t0_ns: int) -> Word:
    """A faster-whisper word of segment `seg` as a `Word` on the capture clock (probabilities clamped to
    [0, 1] against float rounding)."""
    start = t0_ns + round(w.start * NS)
    ratio = float(seg.compression_ratio)
    return Word(
        text=w.word.strip(),
        start_ns=start,
        end_ns=max(start, t0_ns + round(w.end * NS)),
        prob=min(max(float(w.probability), 0.0), 1.0),
        avg_logprob=float(seg.avg_logprob),
        no_speech_prob=min(max(float(seg.no_speech_prob), 0.0), 1.0),
        compression_ratio=ratio if math.isfinite(ratio) else 0.0,
    )
