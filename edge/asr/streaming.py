"""Streaming ASR over a rolling buffer with LocalAgreement-2 commits (thread-free).

Audio is inserted as it arrives; `process()` re-transcribes the rolling buffer once at least `step_s` of new
audio is in. A word is **committed** when two consecutive hypotheses agree on it (the longest common prefix of
the uncommitted parts, LocalAgreement-2 as in Macháček et al. 2023): Whisper's output on a growing buffer
changes at its right edge, rarely twice the same way, so agreement is a cheap stability test. Committed words
are final and carry their timestamps and confidences.

Bounded work, always:
* Speech gate: a step whose new audio holds no speech (`speech_prob` from the VAD below `speech_threshold`, as
  given by the caller) is not transcribed. As soon as `flush_silence_s` of silence has accumulated (checked on
  every call, not once per step) the utterance is closed: its undecoded tail is decoded, the whole hypothesis
  committed and the buffer cleared, so the last words of a sentence do not wait for more speech or another
  agreeing decode. Silence before speech is not buffered beyond a `preroll_s` lead-in.
* The buffer is trimmed to the end of the last committed word once it is longer than `trim_s`, and hard-capped
  at `max_buffer_s` (then the hypothesis is committed as is and the buffer cut): each transcription costs at
  most `max_buffer_s` of audio, whatever happens.
* Load shedding: if a transcription takes longer than the audio it covered grew (the ASR falls behind), the
  step grows (up to `max_step_s`) so that the decoder runs less often; it shrinks back when there is slack. The
  current step and lag are reported.

Hallucination guards, two layers. The transcriber drops segments that fail Whisper's no-speech, log-probability
and compression tests, and its VAD filter keeps silence and noise from the decoder. Every commit here (agreement,
utterance close, forced commit, end of stream) then passes the words through the commit guards of
`edge.asr.guards` (`StreamingAsrConfig.guards`): `low_confidence` (Whisper's segment tests again, for any
transcribe function), `unvoiced` (outside the audio the caller's `speech_prob` called speech), `collapsed` (>= 3
words starting within 60 ms), `fragment_run` (one 1-letter token again and again: "'S 'S 'S") and `repeat` (a
phrase repeating the committed tail that could not have been said again: the same audio twice, or either copy
at under 50 ms a word). Decodes that loop at the end of the speech ("a
jacket. Don't forget a jacket. Don't forget a jacket", the copies all starting within 20 ms) are what these
catch; `StreamingStats.dropped_<rule>` counts the words each rule kept out. Dropped words still move the commit
point, so the next decodes do not offer them again.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edge.asr.guards import RULES, CommitGuard, CommitGuardConfig, norm
from edge.asr.words import Word
from edge.errors import UsageError
from edge.vocab import NS, SAMPLE_RATE

log = logging.getLogger(__name__)

TranscribeFn = Callable[..., list[Word]]


class StreamingConfigError(UsageError, ValueError):
    """An invalid streaming ASR configuration (exit 2)."""


# Whisper's own test for a degenerate, repetitive decode (faster-whisper's compression_ratio_threshold)
PROMPT_MAX_COMPRESSION = 2.4


def usable_prompt(text: str) -> str | None:
    """`text` as a decoder prompt, or None when it is empty or repetitive: a prompt that repeats itself (a
    speaker saying the same phrase again and again, a looped file) drives Whisper into its temperature
    fallback on every decode (measured: 0.9 s -> 13-14 s per decode with a 160-200 character repetitive
    prompt, and no words). Repetitive = gzip compression ratio above Whisper's own 2.4 threshold."""
    if not text.strip():
        return None
    raw = text.encode("utf-8")
    if len(raw) / len(zlib.compress(raw)) > PROMPT_MAX_COMPRESSION:
        log.debug("repetitive ASR prompt dropped: %r", text[-60:])
        return None
    return text


@dataclass(frozen=True)
class StreamingAsrConfig:
    step_s: float = 1.0
    max_step_s: float = 3.0
    trim_s: float = 8.0
    max_buffer_s: float = 15.0
    flush_silence_s: float = 0.8
    quick_flush_silence_s: float = 0.5
    quick_flush_max_prob: float = 0.1
    speech_threshold: float = 0.5
    prompt_chars: int = 200
    preroll_s: float = 0.5
    guards: CommitGuardConfig = field(default_factory=CommitGuardConfig)

    def __post_init__(self) -> None:
        if not 0.1 <= self.step_s <= self.max_step_s:
            raise StreamingConfigError(f"need 0.1 <= step_s <= max_step_s, got {self.step_s}, {self.max_step_s}")
        if not 0 < self.trim_s < self.max_buffer_s:
            raise StreamingConfigError(f"need 0 < trim_s < max_buffer_s, got {self.trim_s}, {self.max_buffer_s}")
        if self.flush_silence_s <= 0 or not 0 <= self.speech_threshold <= 1:
            raise StreamingConfigError("flush_silence_s must be > 0 and speech_threshold in [0, 1]")
        if not 0 < self.quick_flush_silence_s <= self.flush_silence_s:
            raise StreamingConfigError(
                f"need 0 < quick_flush_silence_s <= flush_silence_s, got {self.quick_flush_silence_s}, "
                f"{self.flush_silence_s} (set them equal to close every utterance after the same silence)"
            )
        if not 0 <= self.quick_flush_max_prob < self.speech_threshold:
            raise StreamingConfigError(
                f"need 0 <= quick_flush_max_prob < speech_threshold, got {self.quick_flush_max_prob}"
            )


@dataclass
class StreamingStats:
    transcriptions: int = 0
    skipped_silent: int = 0
    forced_commits: int = 0
    last_decode_s: float = 0.0
    lag_s: float = 0.0  # audio received but not yet covered by a finished transcription
    step_s: float = 0.0
    committed_words: int = 0
    history: list[float] = field(default_factory=list)
    # words the commit guards kept out of the transcript, per rule (edge.asr.guards)
    dropped_low_confidence: int = 0
    dropped_unvoiced: int = 0
    dropped_collapsed: int = 0
    dropped_fragment_run: int = 0
    dropped_repeat: int = 0

    def dropped(self) -> dict[str, int]:
        """Words each commit guard dropped so far, by rule name."""
        return {rule: int(getattr(self, f"dropped_{rule}")) for rule in RULES}


class StreamingAsr:
    def __init__(self, transcribe: TranscribeFn, config: StreamingAsrConfig | None = None) -> None:
        self.config = config or StreamingAsrConfig()
        self._transcribe = transcribe
        self.stats = StreamingStats(step_s=self.config.step_s)
        # voiced audio is kept for as long as a word in the buffer can reach back (edge.asr.guards.VoicedAudio)
        self._guard = CommitGuard(self.config.guards, keep_s=self.config.max_buffer_s + self.config.max_step_s + 2)
        self.reset()

    def reset(self) -> None:
        self._buf = np.zeros(0, np.float32)
        self._buf_t0: int | None = None
        self._new = 0  # samples inserted since the last transcription
        self._new_speech = False
        self._silence = 0  # samples of silence since the last speech (integers: 8 x 0.1 s must reach 0.8 s)
        self._silence_max = 0.0  # the highest speech probability heard in the current silence
        self._has_speech = False  # the buffer holds speech since it was last cleared
        self._prev: list[Word] = []  # previous hypothesis, uncommitted part
        self._committed: list[Word] = []
        self._committed_end = 0
        self._decided = False  # a commit has happened since reset() (its words kept or dropped)
        self._pending: list[Word] = []  # committed by insert_audio (a gap), returned by the next process()
        self._guard.reset()

    # ------------------------------------------------------------------ input
    def insert_audio(self, pcm: np.ndarray, t_ns: int, speech_prob: float | None = None) -> None:
        """Append mono float32 16 kHz samples whose first sample was captured at `t_ns`. `speech_prob`: the
        VAD's speech probability for this chunk (None: assume speech)."""
        pcm = np.asarray(pcm, np.float32).reshape(-1)
        if self._buf_t0 is not None and len(self._buf):
            expected = self._buf_t0 + len(self._buf) * NS // SAMPLE_RATE
            if abs(int(t_ns) - expected) > NS // 10:  # a gap (device lost, samples dropped): start afresh
                log.info("audio discontinuity of %.2f s: closing the utterance", (int(t_ns) - expected) / NS)
                self._pending += self._flush()
                self._drop_buffer()
        if self._buf_t0 is None or len(self._buf) == 0:
            self._buf_t0 = int(t_ns)
        self._buf = np.concatenate([self._buf, pcm])
        self._new += len(pcm)
        speech = speech_prob is None or speech_prob >= self.config.speech_threshold
        self._guard.note_audio(int(t_ns), int(t_ns) + len(pcm) * NS // SAMPLE_RATE, speech)
        self._new_speech |= speech
        self._has_speech |= speech
        self._silence = 0 if speech else self._silence + len(pcm)
        self._silence_max = 0.0 if speech else max(self._silence_max, float(speech_prob or 0.0))
        if not self._has_speech:  # only silence so far: keep a short lead-in, not seconds of nothing
            excess = len(self._buf) - int(self.config.preroll_s * SAMPLE_RATE)
            if excess > 0:
                self._buf = self._buf[excess:]
                self._buf_t0 += excess * NS // SAMPLE_RATE
            self._new = min(self._new, len(self._buf))

    @property
    def buffer_s(self) -> float:
        return len(self._buf) / SAMPLE_RATE

    @property
    def committed(self) -> list[Word]:
        return list(self._committed)

    # ---------------------------------------------------------------- process
    def process(self) -> list[Word]:
        """Transcribe if a step's worth of new audio is in; return the words committed by this call."""
        cfg = self.config
        pending, self._pending = self._pending, []
        if self._silence_ends_utterance() and (self._prev or self._has_speech):
            return pending + self._close_utterance()
        if self._new < self.stats.step_s * SAMPLE_RATE:
            return pending
        if not self._new_speech:
            self.stats.skipped_silent += 1
            self._new = 0
            return pending
        out = pending + self._agree(self._decode())
        if self.buffer_s > cfg.max_buffer_s:
            self.stats.forced_commits += 1
            out += self._commit(self._prev)
            self._drop_buffer()
        elif self.buffer_s > cfg.trim_s and self._committed_end:
            self._trim_to(self._committed_end)
        return out

    def _silence_ends_utterance(self) -> bool:
        """`flush_silence_s` of silence ends an utterance; `quick_flush_silence_s` does when the VAD was sure
        of it all along (every verdict at most `quick_flush_max_prob`: a pause inside a sentence rarely reads
        that silent) and a decode has already heard words in the utterance (uncommitted ones wait). Without
        those words the verdicts may be the lagging silence before a first word: the VAD's verdict arrives
        with a chunk but describes older audio, and a GRID clip's "Lay" became "like" when a quick close cut
        the word's audio in half."""
        cfg = self.config
        if self._silence >= round(cfg.flush_silence_s * SAMPLE_RATE):
            return True
        quick = round(cfg.quick_flush_silence_s * SAMPLE_RATE)
        return bool(self._prev) and self._silence >= quick and self._silence_max <= cfg.quick_flush_max_prob

    def _close_utterance(self) -> list[Word]:
        """End of an utterance: decode the tail if it holds speech not yet decoded, commit everything. The last
        `preroll_s` of audio stays as the next utterance's lead-in, as it does while only silence has come: the
        VAD's verdict arrives with a chunk but describes older audio, so the closing "silence" can already hold
        the onset of the next word (RAVDESS: the sentence's first word was lost on 215 of 240 clips when a
        spurious early speech verdict let the leading silence close an utterance just as the word began)."""
        out = self._agree(self._decode()) if self._new and self._new_speech and len(self._buf) else []
        out += self._flush()
        self._drop_buffer(keep_s=self.config.preroll_s)
        return out

    def finish(self) -> list[Word]:
        """End of stream: transcribe what is left and commit the whole hypothesis."""
        out, self._pending = self._pending, []
        if self._new and self._new_speech and len(self._buf):
            out += self._agree(self._decode())
        out += self._flush()
        self._drop_buffer()
        return out

    # ---------------------------------------------------------------- helpers
    def _decode(self) -> list[Word]:
        # Only text that is no longer in the buffer conditions the decoder: prompted with words it can still
        # hear, Whisper drops them from its output and the timestamps no longer line up.
        buf_t0 = self._start_ns()
        outside = [w.text for w in self._committed if w.end_ns <= buf_t0]
        prompt = usable_prompt(" ".join(outside)[-self.config.prompt_chars :])
        covered_s = self._new / SAMPLE_RATE
        t0 = time.perf_counter()
        words = self._transcribe(self._buf, buf_t0, prompt=prompt)
        dt = time.perf_counter() - t0
        self._new, self._new_speech = 0, False
        self._shed_load(dt, covered_s)
        # words already committed are still in the buffer: keep what starts after the commit point
        return [w for w in words if w.start_ns >= self._committed_end - NS // 20]

    def _shed_load(self, decode_s: float, covered_s: float) -> None:
        st, cfg = self.stats, self.config
        st.transcriptions += 1
        st.last_decode_s = decode_s
        st.lag_s = max(0.0, decode_s - covered_s) + st.lag_s * 0.5
        if decode_s > 0.8 * st.step_s:
            st.step_s = min(cfg.max_step_s, st.step_s * 1.5)
        elif decode_s < 0.4 * st.step_s:
            st.step_s = max(cfg.step_s, st.step_s / 1.25)

    def _agree(self, hyp: list[Word]) -> list[Word]:
        n = 0
        while n < min(len(hyp), len(self._prev)) and norm(hyp[n].text) == norm(self._prev[n].text):
            n += 1
        out = self._commit(hyp[:n])
        self._prev = hyp[n:]
        return out

    def _commit(self, words: list[Word]) -> list[Word]:
        """Commit `words` (a hypothesis' agreed or final part) less what the commit guards drop. Dropped words
        move the commit point too: they were decided, and the next decodes must not offer them again."""
        fresh = [w for w in words if w.end_ns > self._committed_end or not self._decided]
        if not fresh:
            return []
        self._decided = True
        result = self._guard.filter(fresh, self._committed[-self.config.guards.repeat_context_words :])
        for rule, lost in result.dropped.items():
            setattr(self.stats, f"dropped_{rule}", getattr(self.stats, f"dropped_{rule}") + len(lost))
        self._committed += result.kept
        self._committed_end = max(self._committed_end, max(w.end_ns for w in fresh))
        self.stats.committed_words += len(result.kept)
        return result.kept

    def _flush(self) -> list[Word]:
        out = self._commit(self._prev)
        self._prev = []
        return out

    def _trim_to(self, t_ns: int) -> None:
        buf_t0 = self._start_ns()
        cut = int((t_ns - buf_t0) * SAMPLE_RATE // NS)
        cut = max(0, min(cut, len(self._buf)))
        self._buf = self._buf[cut:]
        self._buf_t0 = buf_t0 + cut * NS // SAMPLE_RATE

    def _start_ns(self) -> int:
        """When the buffer's first sample was captured. Set by the first insert_audio() after a reset, and
        every decode or trim follows one."""
        if self._buf_t0 is None:
            raise RuntimeError("no audio since reset(): call insert_audio() before process() decodes")
        return self._buf_t0

    def _drop_buffer(self, keep_s: float = 0.0) -> None:
        """Forget the utterance; keep the last `keep_s` seconds of audio as a lead-in (not new audio: it is decoded
        with the next speech, never alone)."""
        keep = min(len(self._buf), int(keep_s * SAMPLE_RATE))
        if self._buf_t0 is not None:
            self._buf_t0 += (len(self._buf) - keep) * NS // SAMPLE_RATE
        self._buf = self._buf[len(self._buf) - keep :].copy() if keep else np.zeros(0, np.float32)
        self._new, self._new_speech, self._has_speech = 0, False, False
        self._prev = []
