"""The unit the ASR emits: one recognised word, with its timing and the decoder's confidence in it.

Times are monotonic nanoseconds on the same clock as the audio's capture stamps (`t0_ns` of the first sample
plus the decoder's offset), so words line up with audio frames and video samples without conversion.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass


class WordError(ValueError):
    """A `Word` with impossible values; the message names the field."""


@dataclass(frozen=True)
class Word:
    """One word as heard.

    text              the word without surrounding whitespace; punctuation Whisper attached stays ("okay,")
    start_ns, end_ns  monotonic time of the word's start and end (ns)
    prob              the decoder's probability of the word (mean over its sub-word tokens), in [0, 1]
    avg_logprob       mean token log-probability of the segment the word belongs to (<= 0)
    no_speech_prob    Whisper's no-speech probability of that segment, in [0, 1]
    compression_ratio gzip compression ratio of the segment's text (high = repetitive, a hallucination sign)
    """

    text: str
    start_ns: int
    end_ns: int
    prob: float
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float

    def __post_init__(self) -> None:
        if not self.text or self.text != self.text.strip():
            raise WordError(f"word text must be non-empty and stripped, got {self.text!r}")
        if self.end_ns < self.start_ns:
            raise WordError(f"word {self.text!r} ends ({self.end_ns}) before it starts ({self.start_ns})")
        for name in ("prob", "no_speech_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise WordError(f"word {self.text!r}: {name}={value} is not a probability")
        if not math.isfinite(self.avg_logprob) or not math.isfinite(self.compression_ratio):
            raise WordError(f"word {self.text!r}: avg_logprob and compression_ratio must be finite")

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9


def words_text(words: Iterable[Word]) -> str:
    """The words joined by single spaces, as a transcript."""
    return " ".join(w.text for w in words)
