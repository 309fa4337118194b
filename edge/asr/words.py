"""The unit the ASR emits: one recognised word (`edge.vocab.Word`), with its timing and the decoder's confidence.

Times are monotonic nanoseconds on the same clock as the audio's capture stamps (`t0_ns` of the first sample
plus the decoder's offset), so words line up with audio frames and video samples without conversion.
"""

from __future__ import annotations

from collections.abc import Iterable

from edge.vocab import Word, WordError

__all__ = ["Word", "WordError", "words_text"]


def words_text(words: Iterable[Word]) -> str:
    """The words joined by single spaces, as a transcript."""
    return " ".join(w.text for w in words)
