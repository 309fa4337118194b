"""Word error rate: how far a transcript is from a reference, for benchmarks and tests.

Both texts are normalised the same way first (`normalise_words`): lower case, digits spelled out one by one,
letter-digit tokens split ("P2" -> "p", "two"), punctuation dropped except apostrophes. WER = (S + D + I) / N
with S, D, I the substitutions, deletions and insertions of a minimum edit alignment of the hypothesis to the
N reference words (Levenshtein distance over words)."""

from __future__ import annotations

import re

import numpy as np

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
_SPLIT = re.compile(r"(?<=[a-z])(?=\d)|(?<=\d)(?=[a-z])")
_TOKEN = re.compile(r"[a-z']+|\d")


def normalise_words(text: str) -> list[str]:
    """Lower-case words with digits spelled out; letter-digit tokens split ("P2" -> "p", "two")."""
    words = _TOKEN.findall(_SPLIT.sub(" ", text.lower()))
    return [DIGITS[int(w)] if w.isdigit() else w.strip("'") for w in words if w.strip("'")]


def word_edits(reference: list[str], hypothesis: list[str]) -> int:
    """Minimum number of word substitutions, deletions and insertions turning `hypothesis` into `reference`."""
    if not reference or not hypothesis:
        return len(reference) + len(hypothesis)
    vocab: dict[str, int] = {}
    ref = np.array([vocab.setdefault(w, len(vocab)) for w in reference])
    row = np.arange(len(ref) + 1)
    for word in hypothesis:
        code = vocab.get(word, -1)
        diag = row[:-1] + (ref != code)  # substitute or match
        up = row[1:] + 1  # insert the hypothesis word
        new = np.empty_like(row)
        new[0] = row[0] + 1
        new[1:] = np.minimum(diag, up)
        # deletions run along the row: new[j] = min(new[j], new[j-1] + 1), a running minimum of new[j] - j
        new = np.minimum.accumulate(new - np.arange(len(new))) + np.arange(len(new))
        row = new
    return int(row[-1])


def word_error_rate(reference: str, hypothesis: str) -> float:
    """WER of `hypothesis` against `reference` after `normalise_words` (0 for two empty texts)."""
    ref, hyp = normalise_words(reference), normalise_words(hypothesis)
    if not ref:
        return 0.0 if not hyp else float("inf")
    return word_edits(ref, hyp) / len(ref)
