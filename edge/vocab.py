"""The runtime's vocabulary: the words every layer shares, defined once.

  MODALITIES    the three streams, in the order the model's inputs and outputs list them
  SAMPLE_RATE   Hz of every audio sample past the source (capture resamples to it; Whisper, Silero VAD and the
                audio extractor take nothing else)
  NS            nanoseconds per second: every timestamp is `time.monotonic_ns()` on one clock

  Word          one word as heard: the ASR emits it; the windows, the text extractor and the transcript
                message read it (also `edge.asr.Word`)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from edge.errors import UsageError

MODALITIES: Final[tuple[str, str, str]] = ("text", "audio", "vision")
SAMPLE_RATE: Final = 16_000
NS: Final = 1_000_000_000


class WordError(UsageError, ValueError):
    """A `Word` with impossible values; the message names the field. Words are built by the transcriber (which
    drops what it cannot use) and by callers: one that escaped would be a caller passing impossible values, a
    usage error (exit 2, as a bare ValueError always gave), not bad media."""


@dataclass(frozen=True)
class Word:
    """One word as heard.

    text              the word without surrounding whitespace; punctuation Whisper attached stays ("okay,")
    start_ns, end_ns  monotonic time of the word's start and end (ns)
    prob              the decoder's probability of the word (mean over its sub-word tokens), in [0, 1]
    avg_logprob       mean token log-probability of the segment the word belongs to (<= 0)
    no_speech_prob    Whisper's no-speech probability of that segment, in [0, 1]
    compression_ratio gzip compression ratio of the segment's text (high = repetitive, a hallucination sign)

    The decoder's fields default to a word known for certain (a gold transcript, a test's input); the
    transcriber always sets them.
    """

    text: str
    start_ns: int
    end_ns: int
    prob: float = 1.0
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    compression_ratio: float = 1.0

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
        return (self.end_ns - self.start_ns) / NS
