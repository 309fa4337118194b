"""Word error rate: how far a transcript is from a reference, for benchmarks and tests.

Both texts are normalised the same way first (`normalise_words`): lower case, digits spelled out one by one,
letter-digit tokens split ("P2" -> "p", "two"), punctuation dropped except apostrophes. WER = (S + D + I) / N
with S, D, I the substitutions, deletions and insertions of a minimum edit alignment of the hypothesis to the
N reference words (Levenshtein distance over words). `edit_counts` splits the distance into S, D and I (one
minimal alignment; ties prefer a match or substitution, then a deletion), and `repeated_phrase` finds a phrase the
hypothesis says more often than the reference (the symptom of a decoder loop)."""

from __future__ import annotations

import itertools
import re
from collections import Counter
from dataclasses import dataclass

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


@dataclass(frozen=True)
class EditCounts:
    """Substitutions, deletions and insertions of one minimal alignment of a hypothesis to a reference."""

    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    reference_words: int = 0

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    def __add__(self, other: EditCounts) -> EditCounts:
        return EditCounts(
            self.substitutions + other.substitutions, self.deletions + other.deletions,
            self.insertions + other.insertions, self.reference_words + other.reference_words,
        )  # fmt: skip


def edit_counts(reference: str, hypothesis: str) -> EditCounts:
    """S, D and I of `hypothesis` against `reference` after `normalise_words` (S + D + I = `word_edits`)."""
    ref, hyp = normalise_words(reference), normalise_words(hypothesis)
    n, m = len(ref), len(hyp)
    cost = np.zeros((n + 1, m + 1), np.int64)
    cost[:, 0], cost[0, :] = np.arange(n + 1), np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i, j] = min(cost[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]), cost[i - 1, j] + 1, cost[i, j - 1] + 1)
    s = d = ins = 0
    i, j = n, m
    while i or j:
        if i and j and cost[i, j] == cost[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]):
            s += ref[i - 1] != hyp[j - 1]
            i, j = i - 1, j - 1
        elif i and cost[i, j] == cost[i - 1, j] + 1:
            d, i = d + 1, i - 1
        else:
            ins, j = ins + 1, j - 1
    return EditCounts(int(s), d, ins, n)


def repeated_phrase(reference: str, hypothesis: str, min_words: int = 2) -> str | None:
    """A phrase of >= `min_words` words (or one word said twice in a row) that occurs more often in the
    hypothesis than in the reference, after `normalise_words`; None when there is none."""
    ref, hyp = normalise_words(reference), normalise_words(hypothesis)
    ref_pairs = set(itertools.pairwise(ref))
    for a, b in itertools.pairwise(hyp):
        if a == b and (a, b) not in ref_pairs:
            return f"{a} {b}"
    for n in range(max(len(hyp) // 2, min_words), min_words - 1, -1):
        hyp_grams = Counter(tuple(hyp[k : k + n]) for k in range(len(hyp) - n + 1))
        ref_grams = Counter(tuple(ref[k : k + n]) for k in range(len(ref) - n + 1))
        for gram, count in hyp_grams.items():
            if count > max(1, ref_grams[gram]):
                return " ".join(gram)
    return None
