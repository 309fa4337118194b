"""Commit guards: only words that were spoken become final.

Whisper, decoding a short buffer that ends in silence, sometimes loops: it writes the sentence it heard and then
the same sentence again, two or three times, with the copies' words aligned to one instant at the end of the
speech ("a jacket. Don't forget a jacket. Don't forget a jacket", six words starting within 20 ms). Such a
decode can be confident (mean log-probability -0.2, no-speech 0.1) and compress below Whisper's 2.4 limit
(2.39 measured), so the transcriber's segment rules let it through, and a commit makes the copies final for
every subscriber. `StreamingAsr` therefore passes every word it is about to commit (agreement, utterance close,
forced commit, end of stream) through `CommitGuard.filter`, which applies five named rules in this order; a word
is dropped by the first rule that fires, and each rule's drops are counted (`StreamingStats.dropped_*`).

  low_confidence  the decode the word came from fails Whisper's own segment tests: compression ratio above
                  `max_compression_ratio` (2.4), or no-speech probability above `silence_no_speech_prob` (0.6)
                  together with mean log-probability below `silence_avg_logprob` (-1.0). The built-in
                  transcriber already drops such segments; this rule holds the same line for any other
                  transcribe function. Not stricter: on real RAVDESS speech, correct decodes reached
                  no-speech 0.79 and log-probability -1.68, while the looping decodes scored -0.17 .. -0.38 and
                  0.08 .. 0.20, and real 40-80-word text compresses up to 2.0 (MOSI transcripts): a stricter
                  threshold drops real speech and still misses loops.
  unvoiced        the word lies outside the audio the VAD called speech. A chunk's `speech_prob` arrives with
                  the chunk but describes earlier audio (the audio features run in 320 ms blocks), so a voiced
                  chunk [s, e) vouches for words overlapping [s - vad_lead_s, e + vad_tail_s]: lead 0.8 s
                  (measured: correct first words ended up to 0.35 s before their first voiced chunk, plus a
                  block and a 0.2 s live chunk), tail 0.3 s (Whisper's word times are often +-0.1 s off). A word
                  is only judged once the VAD has had its say on it (it ends at least vad_lead_s before the
                  newest audio); chunks with an unknown `speech_prob` (None) count as voiced.
  collapsed       at least `collapse_min_words` (3) words start within `collapse_window_s` (60 ms): all of
                  them go. Whisper's alignment has a 20 ms step; three words in 60 ms is over 30 words/s, five
                  times the fastest speech. Real decodes showed pairs (a word split at the buffer's edge), runs
                  of three only in loops and in "-S -S -S" garbage at a buffer's end.
  repeat          a phrase that repeats the words just before it (the committed tail and the words kept so
                  far, the last `repeat_context_words`, 16) and could not have been spoken again: it starts
                  before the last word of the earlier copy starts (the same audio twice), or either copy is said
                  at under `repeat_max_word_s` (50 ms) per word, 20 words/s, three times the fastest speech. The
                  loops' copies took 0-10 ms per word; real phrases of two words took >= 80 ms per word. An
                  earlier copy that fast was written without being said: Whisper heard a word once, wrote it
                  twice and aligned the first copy to no audio ("so 1.20-1.20 so 1.20-1.44", RAVDESS), so the
                  pair is one saying and the later copy goes. Not relative to the earlier copy's length:
                  Whisper stretches a buffer's first word over the silence before it (0.8 s for "Set" in
                  GRID), and a genuine "Set blue" then looked less than half as long as the first.
                  A one-word phrase counts only as an immediate repeat ("door! door!"), since short words recur
                  in any sentence.
  fragment_run    a run of at least `fragment_run_min` (3) identical fragments in a row, a fragment being a
                  word of at most `fragment_max_chars` (1) letters or digits ("'S", "D", "-"): every word of the
                  run after its first goes. Whisper sometimes decodes a shouted or distorted sentence as a string
                  of one such token spread over seconds ("D 'I 'S 'S 'S 'S 'S 'S 'S 'S", RAVDESS, an angry
                  "Dogs are sitting by the door"), at a pace neither `collapsed` nor `repeat` catches. Real words
                  never match; a stutter ("I I I think") keeps one "I".

`CommitGuardConfig(enabled=False)` turns all five off (the benchmark's "before"). The reasons and the measured
numbers are in docs/RELIABILITY.md ("Commit guards").
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from edge.errors import UsageError
from edge.vocab import NS, Word

log = logging.getLogger(__name__)

RULES = ("low_confidence", "unvoiced", "collapsed", "fragment_run", "repeat")
_NORM = re.compile(r"[^\w']+")


class GuardConfigError(UsageError, ValueError):
    """An invalid `CommitGuardConfig` (exit 2)."""


def norm(word: str) -> str:
    """A word as compared for agreement and repetition: lower case, punctuation dropped except apostrophes."""
    return _NORM.sub("", word.lower())


@dataclass(frozen=True)
class CommitGuardConfig:
    """Thresholds of the commit guards (the module docstring gives the reason for each value)."""

    enabled: bool = True
    max_compression_ratio: float = 2.4
    silence_no_speech_prob: float = 0.6
    silence_avg_logprob: float = -1.0
    vad_lead_s: float = 0.8
    vad_tail_s: float = 0.3
    collapse_window_s: float = 0.06
    collapse_min_words: int = 3
    repeat_context_words: int = 16
    repeat_max_word_s: float = 0.05
    fragment_run_min: int = 3
    fragment_max_chars: int = 1

    def __post_init__(self) -> None:
        if self.max_compression_ratio <= 0 or not 0 <= self.silence_no_speech_prob <= 1:
            raise GuardConfigError("max_compression_ratio must be > 0 and silence_no_speech_prob in [0, 1]")
        if self.silence_avg_logprob > 0:
            raise GuardConfigError(f"silence_avg_logprob={self.silence_avg_logprob}: log-probabilities are <= 0")
        if min(self.vad_lead_s, self.vad_tail_s, self.collapse_window_s, self.repeat_max_word_s) < 0:
            raise GuardConfigError("vad_lead_s, vad_tail_s, collapse_window_s and repeat_max_word_s must be >= 0")
        if self.collapse_min_words < 2 or self.repeat_context_words < 1:
            raise GuardConfigError("collapse_min_words must be >= 2 and repeat_context_words >= 1")
        if self.fragment_run_min < 2 or self.fragment_max_chars < 0:
            raise GuardConfigError("fragment_run_min must be >= 2 and fragment_max_chars >= 0")


# ---------------------------------------------------------------------------------------------------- rules
def low_confidence(word: Word, cfg: CommitGuardConfig) -> bool:
    """Rule `low_confidence`: the word's decode fails Whisper's repetition or silence test."""
    silent = word.no_speech_prob > cfg.silence_no_speech_prob and word.avg_logprob < cfg.silence_avg_logprob
    return silent or word.compression_ratio > cfg.max_compression_ratio


class VoicedAudio:
    """Where the VAD heard speech, as the streaming ASR was told chunk by chunk (capture clock, ns). Spans that
    end more than `keep_s` before the newest audio are forgotten (the streaming ASR's words all lie in its
    bounded buffer)."""

    def __init__(self, keep_s: float = 60.0) -> None:
        self._spans: list[list[int]] = []  # merged voiced chunk spans [start, end), in time order
        self.horizon_ns: int | None = None  # end of the newest audio noted
        self._keep_ns = round(keep_s * NS)

    def add(self, t0_ns: int, t1_ns: int, voiced: bool) -> None:
        self.horizon_ns = t1_ns if self.horizon_ns is None else max(self.horizon_ns, t1_ns)
        if not voiced:
            return
        if self._spans and t0_ns <= self._spans[-1][1] + NS // 100:  # contiguous (10 ms of rounding)
            self._spans[-1][1] = max(self._spans[-1][1], t1_ns)
        else:
            self._spans.append([t0_ns, t1_ns])
            self.prune(self.horizon_ns - self._keep_ns)

    def prune(self, before_ns: int) -> None:
        """Forget voiced spans that end before `before_ns` (no word left to judge lies there)."""
        if self._spans and self._spans[0][1] < before_ns:
            self._spans = [s for s in self._spans if s[1] >= before_ns]

    def spans(self) -> list[tuple[int, int]]:
        return [(a, b) for a, b in self._spans]

    def unvoiced(self, word: Word, cfg: CommitGuardConfig) -> bool:
        """Rule `unvoiced` (see the module docstring)."""
        lead, tail = round(cfg.vad_lead_s * NS), round(cfg.vad_tail_s * NS)
        if self.horizon_ns is None or word.end_ns + lead > self.horizon_ns:
            return False  # the VAD's verdict on this word's audio may not have arrived yet
        lo, hi = word.start_ns - tail, word.end_ns + lead
        return not any(a < hi and b > lo for a, b in self._spans)


def collapsed(words: Sequence[Word], cfg: CommitGuardConfig, tail: Sequence[Word] = ()) -> list[bool]:
    """Rule `collapsed`: flags the words of every run of >= collapse_min_words words whose starts lie within
    collapse_window_s of the run's first start. `tail`: words committed before (a run may have begun there;
    they count towards the run but are not flagged)."""
    window = round(cfg.collapse_window_s * NS)
    ctx = list(tail[-(cfg.collapse_min_words - 1) :]) if cfg.collapse_min_words > 1 else []
    seq = [*ctx, *words]
    order = sorted(range(len(seq)), key=lambda k: seq[k].start_ns)
    flags = [False] * len(seq)
    i = 0
    while i < len(order):
        j = i
        while j < len(order) and seq[order[j]].start_ns - seq[order[i]].start_ns <= window:
            j += 1
        if j - i >= cfg.collapse_min_words:
            for k in order[i:j]:
                flags[k] = True
            i = j
        else:
            i += 1
    return flags[len(ctx) :]


def _fragment(text: str, cfg: CommitGuardConfig) -> str | None:
    """The word's letters and digits if it is a fragment (at most fragment_max_chars of them), else None. Only
    those are compared: Whisper writes the same token as "'S" and "'S'" within one run."""
    key = "".join(c for c in norm(text) if c.isalnum())
    return key if len(key) <= cfg.fragment_max_chars else None


def fragment_runs(cands: Sequence[Word], tail: Sequence[Word], cfg: CommitGuardConfig) -> list[bool]:
    """Rule `fragment_run`: in a run of >= fragment_run_min identical fragments in a row ("'S 'S 'S 'S"), flags
    every candidate after the run's first word. `tail`: the committed words (a run may have begun there)."""
    seq = [*tail[-(cfg.fragment_run_min - 1) :], *cands]
    first = len(seq) - len(cands)
    flags = [False] * len(cands)
    i = 0
    while i < len(seq):
        key = _fragment(seq[i].text, cfg)
        j = i + 1
        while key is not None and j < len(seq) and _fragment(seq[j].text, cfg) == key:
            j += 1
        if j - i >= cfg.fragment_run_min:
            for k in range(max(i + 1, first), j):
                flags[k - first] = True
        i = j
    return flags


def _paced(words: Sequence[Word], cfg: CommitGuardConfig) -> bool:
    """Whether `words` take at least repeat_max_word_s per word, as words that were said do."""
    return words[-1].end_ns - words[0].start_ns >= len(words) * round(cfg.repeat_max_word_s * NS)


def _respoken(copy: Sequence[Word], original: Sequence[Word], cfg: CommitGuardConfig) -> bool:
    """Whether `copy` could be a second saying of `original` (same words): it starts once the original's last
    word has started, and both were said at a speaking pace. An original aligned to (nearly) no audio is the
    decoder writing the words twice for one saying, whichever copy the alignment gave the audio to."""
    if copy[0].start_ns < original[-1].start_ns:
        return False
    return _paced(copy, cfg) and _paced(original, cfg)


def _longest_repeat(cands: Sequence[Word], i: int, context: Sequence[Word]) -> tuple[int, int]:
    """The longest phrase starting at cands[i] that repeats words of `context` (its latest occurrence there):
    (length, index in context), or (0, -1). One word counts only as an immediate repeat."""
    keys = [norm(w.text) for w in context]
    for n in range(min(len(cands) - i, len(context)), 0, -1):
        phrase = [norm(w.text) for w in cands[i : i + n]]
        if not all(phrase):
            continue
        starts = [len(keys) - 1] if n == 1 else range(len(keys) - n, -1, -1)
        for j in starts:
            if keys[j : j + n] == phrase:
                return n, j
    return 0, -1


def repeats(cands: Sequence[Word], tail: Sequence[Word], cfg: CommitGuardConfig) -> list[bool]:
    """Rule `repeat`: flags candidate words that repeat the words before them (`tail`, the committed words, then
    the candidates kept so far; the last repeat_context_words of them) and could not have been spoken again. The
    longest repeated phrase is judged as a whole: said again at a speaking pace, all of it stays."""
    context = list(tail[-cfg.repeat_context_words :])
    flags = [False] * len(cands)
    i = 0
    while i < len(cands):
        n, j = _longest_repeat(cands, i, context)
        if n and not _respoken(cands[i : i + n], context[j : j + n], cfg):
            flags[i : i + n] = [True] * n
            i += n
            continue
        step = max(n, 1)
        context = [*context, *cands[i : i + step]][-cfg.repeat_context_words :]
        i += step
    return flags


# ---------------------------------------------------------------------------------------------------- guard
@dataclass(frozen=True)
class GuardResult:
    kept: list[Word]
    dropped: dict[str, list[Word]]  # rule -> the words it dropped


class CommitGuard:
    """Applies the rules to words about to be committed. Owns the record of voiced audio (`note_audio`)."""

    def __init__(self, config: CommitGuardConfig | None = None, keep_s: float = 60.0) -> None:
        self.config = config or CommitGuardConfig()
        self._keep_s = keep_s
        self.voiced = VoicedAudio(keep_s)

    def reset(self) -> None:
        self.voiced = VoicedAudio(self._keep_s)

    def note_audio(self, t0_ns: int, t1_ns: int, voiced: bool) -> None:
        self.voiced.add(t0_ns, t1_ns, voiced)

    def filter(self, words: Sequence[Word], tail: Sequence[Word]) -> GuardResult:
        """`words` (about to be committed, in time order) less those a rule drops; `tail`: the committed words."""
        dropped: dict[str, list[Word]] = {rule: [] for rule in RULES}
        if not self.config.enabled or not words:
            return GuardResult(list(words), dropped)
        cfg = self.config
        flags = collapsed(words, cfg, tail)
        survivors: list[Word] = []
        for word, collapse in zip(words, flags, strict=True):
            if low_confidence(word, cfg):
                dropped["low_confidence"].append(word)
            elif self.voiced.unvoiced(word, cfg):
                dropped["unvoiced"].append(word)
            elif collapse:
                dropped["collapsed"].append(word)
            else:
                survivors.append(word)
        runs = fragment_runs(survivors, tail, cfg)
        dropped["fragment_run"] = [w for w, run in zip(survivors, runs, strict=True) if run]
        survivors = [w for w, run in zip(survivors, runs, strict=True) if not run]
        kept: list[Word] = []
        for word, repeat in zip(survivors, repeats(survivors, tail, cfg), strict=True):
            (dropped["repeat"] if repeat else kept).append(word)
        for rule, lost in dropped.items():
            if lost:
                log.info("ASR commit guard %s dropped %r", rule, " ".join(w.text for w in lost))
        return GuardResult(kept, dropped)
