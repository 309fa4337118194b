"""Recorded clips -> model inputs, with the live extractors and the live window assembler (numpy + ORT only).

One implementation for training and serving: a clip goes through the same `AudioFeatureExtractor`,
`VisualFeatureExtractor` (+ its 10 Hz `FrameSampler`), `TextEncoder` and `Transcriber` as the live runtime,
and is cut into one window by `edge.windows.WindowAssembler`, the object that cuts the live windows.

Which window. The live model reads a window that ends "now", audio and vision over the last `window_s`
seconds and text from the words that ended within `context_s` before that. A training utterance is shown the
same way, as the window that ends when the utterance does:
  end   = the end of the last speech + `speech_pad_s` (`end_at="speech"`, default), where speech is the
          audio extractor's own Silero VAD column (`vad_speech_prob` >= `speech_threshold`) and, with ASR
          text, the end of the last recognised word; no speech detected, or `end_at="clip"`: the clip's end.
          The pad (0.25 s, half a hop) is the silence the live window nearest an utterance's end holds on
          average. `end` is never past the clip and falls on the 40 ms audio frame grid, so every audio slot
          holds exactly one frame (a partial last frame is left out);
  audio  and vision slots cover [end - window_s, end); a clip shorter than that leaves the early slots
          masked, exactly as the live window does in the first seconds after start-up;
  cut   (`cut`, a fraction f in (0, 1); default None) a window that ends while the utterance is still under
          way: end = s0 + f (s1 - s0) on the audio frame grid, s0 / s1 the first / last speech (the VAD
          column), and no words: the live ASR emits an utterance's words when its VAD segment closes, so the
          live windows inside an utterance mostly have none (docs/CORPUS.md, "In progress");
  text  gold: the transcript, `TextEncoder.encode_text` (its last `max_steps` tokens; from_asr = 0);
          "asr": the Transcriber's words on the clip's audio, those ending within `context_s` before `end`
          (the assembler's rule), `TextEncoder.encode_words` (from_asr = 1).
The audio extractor runs over the whole clip from its first sample, so its stateful columns (the VAD's LSTM,
the 3 s SNR tracker) have the history they would have live. Vision samples the 10 Hz grid anchored at the
window's start (tick k at start + k * 100 ms, the start of slot k); frames before the window are decoded
but not analysed.

Time and decoding: `qamoe.corpus.clip_media` (audio with PyAV, video with OpenCV; a file that cannot be read
is a `ClipReadError`; callers that batch clips skip it).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from edge.asr import AsrConfig, Transcriber, Word, words_text
from edge.features.audio import AudioFeatureExtractor, AudioFrames
from edge.features.audio_config import AudioFeatureConfig
from edge.features.spec import STREAMS, FeatureSpec, FeatureSpecError, default_feature_spec
from edge.features.text import TextEncoder
from edge.features.visual import VISION_COLUMNS, VisualFeatureExtractor, VisualFrame
from edge.vocab import NS
from edge.windows import StreamGeometry, WindowAssembler, WindowConfig
from qamoe.corpus.clip_media import (
    AudioInput,
    frame_period_ns,
    frame_time,
    load_pcm,
    no_frames,
    open_video,
    video_duration_ns,
)
from qamoe.corpus.offline_errors import ClipReadError, OfflineConfigError

logger = logging.getLogger(__name__)

ASR = "asr"  # the `transcript` argument that asks for the live ASR instead of a gold transcript
EndAt = Literal["speech", "clip"]


NO_ENCODER = 2**62  # AudioFeatureExtractor.extract(encode_from_ns=): no block through the voice encoder


@dataclass(frozen=True)
class OfflineConfig:
    """How a recorded clip is cut into one window (see the module docstring)."""

    end_at: EndAt = "speech"
    speech_pad_s: float = 0.25
    speech_threshold: float = 0.5
    max_clip_s: float = 600.0  # longer is a whole recording passed by mistake, not an utterance
    default_fps: float = 25.0  # for containers that state no frame rate
    cut: float | None = None  # end the window at this fraction of the speech, without words (docstring)

    def __post_init__(self) -> None:
        if self.end_at not in ("speech", "clip"):
            raise OfflineConfigError(f"end_at={self.end_at!r}: use 'speech' (default) or 'clip'")
        if not 0 <= self.speech_pad_s <= 2:
            raise OfflineConfigError(f"speech_pad_s={self.speech_pad_s}: use [0, 2] seconds (default 0.25)")
        if not 0 < self.speech_threshold < 1:
            raise OfflineConfigError(f"speech_threshold={self.speech_threshold} must lie in (0, 1), e.g. 0.5")
        if self.cut is not None and not 0 < self.cut < 1:
            raise OfflineConfigError(f"cut={self.cut}: use a fraction of the speech in (0, 1), e.g. 0.5")
        if not self.max_clip_s > 0 or not 0 < self.default_fps <= 1000:
            raise OfflineConfigError("max_clip_s must be > 0 and default_fps in (0, 1000]")


@dataclass(frozen=True, eq=False)
class StreamFeatures:
    """One stream of a window: values [max_steps, dim] float32 (zeros where masked), mask [max_steps] bool."""

    values: np.ndarray
    mask: np.ndarray


@dataclass(frozen=True)
class ClipStats:
    """Where the window fell in the clip and what was decoded (times in seconds from the first sample)."""

    duration_s: float
    window_start_s: float
    window_end_s: float
    speech_end_s: float | None  # None: no speech detected (or end_at="clip")
    audio_frames: int
    video_frames: int  # frames decoded
    n_words: int  # words in the transcript used


@dataclass(frozen=True, eq=False)
class ClipFeatures:
    """The model's inputs for one clip, per stream (`streams[name]` for name in text, audio, vision)."""

    streams: dict[str, StreamFeatures]
    transcript: str
    transcript_source: Literal["gold", "asr", "none"]
    stats: ClipStats


@dataclass(frozen=True)
class Extractors:
    """The live extractors, built once and reused across clips (they hold ORT / CTranslate2 sessions)."""

    audio: AudioFeatureExtractor
    visual: VisualFeatureExtractor
    text: TextEncoder
    asr: Transcriber | None = None

    @classmethod
    def create(
        cls, *, asr: bool = False, asr_config: AsrConfig | None = None,
        engines_dir: str | os.PathLike[str] | None = None, voice_encoder: bool = False,
    ) -> Extractors:
        """Default extractors from the built engines; `asr=True` also loads the Transcriber, `voice_encoder=True`
        adds the voice encoder's audio columns (AudioFeatureConfig.voice_encoder)."""
        transcriber = Transcriber(asr_config, engines_dir) if asr else None
        audio = AudioFeatureExtractor(AudioFeatureConfig(voice_encoder=voice_encoder), engines_dir=engines_dir)
        return cls(audio, VisualFeatureExtractor(engines_dir=engines_dir), TextEncoder(engines_dir=engines_dir),
                   transcriber)

    def feature_spec(self) -> FeatureSpec:
        """The default feature spec these extractors produce."""
        return default_feature_spec(voice_encoder=self.audio.config.voice_encoder)

    def check(self, spec: FeatureSpec) -> None:
        """Raise OfflineConfigError unless these extractors produce exactly `spec`'s streams."""
        audio_cfg, text_cfg = self.audio.config, self.text.config
        # stream -> (rate_hz, max_steps, columns, context_s); None where the extractor does not fix it
        produced = {
            "text": (None, text_cfg.max_steps, self.text.columns, text_cfg.context_s),
            "audio": (audio_cfg.sample_rate / audio_cfg.frame_samples, None, self.audio.names, None),
            "vision": (self.visual.config.rate_hz, None, VISION_COLUMNS, None),
        }
        for name, (rate, steps, columns, context) in produced.items():
            want = spec.stream(name)
            checks = {
                "rate_hz": rate is None or math.isclose(rate, want.rate_hz or 0.0),
                "max_steps": steps is None or steps == want.max_steps,
                "columns": tuple(columns) == want.columns,
                "context_s": context is None or math.isclose(context, want.context_s or 0.0),
            }
            bad = [what for what, ok in checks.items() if not ok]
            if bad:
                raise OfflineConfigError(
                    f"the {name} extractor does not produce the feature spec ({', '.join(bad)} differ): "
                    "build the extractors with the spec's settings, or use the spec they produce"
                )


def extract_clip(
    video: str | os.PathLike[str] | None,
    audio: AudioInput,
    transcript: str | None,
    *,
    spec: FeatureSpec,
    extractors: Extractors,
    config: OfflineConfig | None = None,
) -> ClipFeatures:
    """One window of model inputs for a recorded clip (see the module docstring).

    `audio`: mono float32 PCM at 16 kHz (see `edge.features.to_mono_16k`), a media file (often the same as
    `video`), or None (audio masked). `transcript`: gold text, `ASR` ("asr") for the live ASR on the audio,
    or None (text masked). Raises ClipReadError for files that cannot be read. Check the extractors against
    the spec once (`extractors.check(spec)`) before a batch of clips."""
    cfg = config if config is not None else OfflineConfig()
    pcm = load_pcm(audio)
    words = _transcribe(pcm, transcript, extractors) if cfg.cut is None else []  # a cut window has no words
    voice = extractors.audio.config.voice_encoder
    # the window follows the speech (VAD columns, words); Whisper's encoder then runs on the window's blocks only
    skip = NO_ENCODER if voice else None
    frames = extractors.audio.extract(pcm, 0, encode_from_ns=skip) if pcm is not None else None
    duration = _duration_ns(pcm, video, extractors, cfg)
    frame_ns = extractors.audio.frame_period_ns
    speech_end = _speech_end_ns(frames, words, frame_ns, cfg)
    end = _window_end_ns(duration, speech_end, frame_ns if pcm is not None else None, cfg)
    if cfg.cut is not None:
        end = _cut_end_ns(frames, frame_ns, cfg, cfg.cut)
    start = end - round(spec.window_s * NS)
    if voice and pcm is not None:
        frames = extractors.audio.extract(pcm, 0, encode_from_ns=start)
    asm = _assembler(spec, end - round(spec.hop_s * NS))  # its first window is [start, end)
    if frames is not None:
        for t, row in zip(frames.t_ns.tolist(), frames.values, strict=True):
            asm.push("audio", t, row)
    n_video = 0 if video is None else _push_vision(asm, Path(video), start, end, extractors.visual, cfg)
    asm.push_words(words)
    (window,) = asm.pop_ready(end)
    streams = {name: StreamFeatures(window.feats[name], window.masks[name]) for name in ("audio", "vision")}
    heard = list(window.words)
    # a window inside the speech shows what the live ASR has by then: no words, whatever the transcript
    streams["text"], text, source = _text(ASR if cfg.cut is not None else transcript, heard, extractors.text)
    stats = ClipStats(
        duration_s=duration / NS, window_start_s=start / NS, window_end_s=end / NS,
        speech_end_s=None if speech_end is None else speech_end / NS,
        audio_frames=0 if frames is None else len(frames), video_frames=n_video, n_words=len(text.split()),
    )
    logger.debug("clip %s: %s", video if video is not None else "(pcm)", stats)
    return ClipFeatures(streams={s: streams[s] for s in STREAMS}, transcript=text, transcript_source=source,
                        stats=stats)


def extract_still(frame_bgr: np.ndarray, *, spec: FeatureSpec, extractors: Extractors) -> ClipFeatures:
    """One window of a camera that shows the still frame `frame_bgr` for the whole window, with no microphone
    and no words (the live path of `qamoe-live --mic none` in front of a photo).

    The visual extractor is per frame and keeps no state between frames, so a still frame gives the same
    `VisualFrame` at every 10 Hz tick: it runs once and its row fills every tick of [0, window_s) through the
    window assembler (tests/integration/test_fer_corpus.py checks that against running it per tick). Audio is
    masked (no microphone); text is `encode_words([])`, what the runtime encodes for a window without words."""
    end = round(spec.window_s * NS)
    asm = _assembler(spec, end - round(spec.hop_s * NS))  # its first window is [0, end)
    vf = extractors.visual.process(frame_bgr, 0)
    period = round(NS / extractors.visual.config.rate_hz)
    for tick in range(0, end, period):
        asm.push("vision", tick, vf.values, vf.present)
    (window,) = asm.pop_ready(end)
    streams = {name: StreamFeatures(window.feats[name], window.masks[name]) for name in ("audio", "vision")}
    values, mask = extractors.text.encode_words([])
    streams["text"] = StreamFeatures(values, mask)
    stats = ClipStats(duration_s=end / NS, window_start_s=0.0, window_end_s=end / NS, speech_end_s=None,
                      audio_frames=0, video_frames=1, n_words=0)  # fmt: skip
    return ClipFeatures(streams={s: streams[s] for s in STREAMS}, transcript="", transcript_source="none",
                        stats=stats)


def _transcribe(pcm: np.ndarray | None, transcript: str | None, extractors: Extractors) -> list[Word]:
    if transcript != ASR:
        return []
    if pcm is None or extractors.asr is None:
        raise OfflineConfigError(
            "transcript='asr' needs audio and Extractors.create(asr=True); pass a gold transcript otherwise"
        )
    return extractors.asr.transcribe(pcm, 0)


def _duration_ns(pcm: np.ndarray | None, video: str | os.PathLike[str] | None, extractors: Extractors,
                 cfg: OfflineConfig) -> int:
    """The clip's length: the audio's whole 40 ms frames (a partial last one left out), else the video's."""
    if pcm is not None:
        frame = extractors.audio.config.frame_samples
        duration = pcm.shape[0] // frame * extractors.audio.frame_period_ns
    elif video is not None:
        duration = video_duration_ns(Path(video), cfg.default_fps)
    else:
        raise OfflineConfigError("extract_clip needs a video path and/or audio: pass at least one")
    if not 0 < duration <= cfg.max_clip_s * NS:
        raise ClipReadError(f"clip lasts {duration / NS:.3f} s: extraction takes 40 ms to max_clip_s="
                            f"{cfg.max_clip_s} s; cut long recordings into utterances first")
    return duration


def _speech_end_ns(
    frames: AudioFrames | None, words: list[Word], frame_ns: int, cfg: OfflineConfig
) -> int | None:
    """End of the last speech: the last audio frame the VAD calls speech, or the last ASR word's end."""
    if cfg.end_at == "clip" or frames is None:
        return None
    speech = np.flatnonzero(frames.column("vad_speech_prob") >= cfg.speech_threshold)
    ends = [int(frames.t_ns[speech[-1]]) + frame_ns] if speech.size else []
    ends += [words[-1].end_ns] if words else []
    return max(ends) if ends else None


def _cut_end_ns(frames: AudioFrames | None, frame_ns: int, cfg: OfflineConfig, cut: float) -> int:
    """A window end inside the speech: first speech frame + `cut` of the speech's span, on the frame grid."""
    if frames is None:
        raise OfflineConfigError("cut needs audio: a window inside the speech is placed by the VAD")
    speech = np.flatnonzero(frames.column("vad_speech_prob") >= cfg.speech_threshold)
    if speech.size < 2:
        raise ClipReadError("cut: the VAD hears no speech in this clip, so no window can end inside it")
    first, last = int(frames.t_ns[speech[0]]), int(frames.t_ns[speech[-1]]) + frame_ns
    end = first + round(cut * (last - first))
    return max(frame_ns, -(-end // frame_ns) * frame_ns)


def _window_end_ns(duration: int, speech_end: int | None, frame_ns: int | None, cfg: OfflineConfig) -> int:
    """Speech end + pad, never past the clip, rounded up to the audio frame grid (when there is audio)."""
    if speech_end is None:
        return duration
    end = speech_end + round(cfg.speech_pad_s * NS)
    if frame_ns is not None:
        end = -(-end // frame_ns) * frame_ns
    return min(duration, end)


def _assembler(spec: FeatureSpec, start_ns: int) -> WindowAssembler:
    config = WindowConfig(length_s=spec.window_s, hop_s=spec.hop_s, lateness_s=0.0,
                          text_context_s=spec.text.context_s or 0.0, max_pending_windows=1)
    geoms = [StreamGeometry(s, spec.stream(s).rate_hz or 0.0, spec.stream(s).max_steps, spec.stream(s).dim)
             for s in ("audio", "vision")]
    for g in geoms:
        if not g.rate_hz:
            raise FeatureSpecError(f"{g.name}: a framed stream needs rate_hz in the feature spec")
    return WindowAssembler(config, geoms, start_ns)


def _push_vision(asm: WindowAssembler, path: Path, start: int, end: int, visual: VisualFeatureExtractor,
                 cfg: OfflineConfig) -> int:
    """Decode `path` and push one `VisualFrame` per 10 Hz tick in [start, end); returns the frames decoded.
    Frames too early to be any tick's nearest are decoded (`grab`) but not converted or analysed."""
    sampler = visual.sampler(origin_ns=start)
    reach = sampler.tolerance_ns + sampler.period_ns
    cap = open_video(path)
    period_ns = frame_period_ns(cap, cfg.default_fps)
    times: list[int] = []
    try:
        while cap.grab():
            t = frame_time(cap, times, period_ns)
            times.append(t)
            if t < start - reach:
                continue
            if t > end + reach:
                break
            ok, frame = cap.retrieve()
            if ok:  # a frame that cannot be converted is a dropped frame: its ticks take a neighbour
                _push_samples(asm, sampler.push(t, frame), end, visual)
    finally:
        cap.release()
    if not times:
        raise no_frames(path)
    _push_samples(asm, sampler.finish(), end, visual)
    return len(times)


def _push_samples(asm: WindowAssembler, samples: list[Any], end: int, visual: VisualFeatureExtractor) -> None:
    for s in samples:
        if s.tick_ns >= end:
            continue
        vf = visual.process(s.frame, s.tick_ns) if s.frame is not None else VisualFrame.absent(s.tick_ns)
        asm.push("vision", s.tick_ns, vf.values, vf.present)


def _text(transcript: str | None, words: list[Word], encoder: TextEncoder
          ) -> tuple[StreamFeatures, str, Literal["gold", "asr", "none"]]:
    if transcript == ASR:
        values, mask = encoder.encode_words(words)
        return StreamFeatures(values, mask), words_text(words), "asr"
    if transcript is None:
        values, mask = encoder.encode_text("")
        return StreamFeatures(values, mask), "", "none"
    values, mask = encoder.encode_text(transcript)
    return StreamFeatures(values, mask), transcript, "gold"
