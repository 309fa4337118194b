"""Word error rate (edge.asr.wer) against a textbook Levenshtein distance."""

from __future__ import annotations

import random

from edge.asr.wer import edit_counts, normalise_words, repeated_phrase, word_edits, word_error_rate


def _levenshtein(a: list[str], b: list[str]) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        diag, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            diag, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diag + (x != y))
    return row[-1]


def test_word_edits_match_the_textbook_distance() -> None:
    rng = random.Random(0)
    for _ in range(400):
        a = [rng.choice("abcd") for _ in range(rng.randint(0, 9))]
        b = [rng.choice("abcd") for _ in range(rng.randint(0, 9))]
        assert word_edits(a, b) == _levenshtein(a, b), (a, b)


def test_normalisation_and_rates() -> None:
    assert normalise_words("Set white with P2 soon.") == ["set", "white", "with", "p", "two", "soon"]
    assert normalise_words("Lay white by S0 again, don't!") == ["lay", "white", "by", "s", "zero", "again", "don't"]
    assert word_error_rate("set white with p two soon", "Set white P2 now.") == 2 / 6  # 1 deletion, 1 sub
    assert word_error_rate("a b", "a b c d") == 1.0  # insertions count
    assert word_error_rate("", "") == 0.0 and word_error_rate("a", "") == 1.0


def test_edit_counts_split_the_distance() -> None:
    rng = random.Random(1)
    for _ in range(300):
        a = [rng.choice("abcd") for _ in range(rng.randint(0, 8))]
        b = [rng.choice("abcd") for _ in range(rng.randint(0, 8))]
        counts = edit_counts(" ".join(a), " ".join(b))
        assert counts.errors == _levenshtein(a, b), (a, b, counts)
        assert counts.reference_words == len(a)
        assert counts.insertions - counts.deletions == len(b) - len(a)  # every alignment balances the lengths
    loop = edit_counts("dogs are sitting by the door", "Dogs are sitting by the door. Dogs are sitting")
    assert (loop.substitutions, loop.deletions, loop.insertions) == (0, 0, 3)
    lost = edit_counts("kids are talking by the door", "are talking about the door")
    assert (lost.substitutions, lost.deletions, lost.insertions) == (1, 1, 0)
    assert (loop + lost).reference_words == 12 and (loop + lost).errors == 5


def test_repeated_phrase_finds_what_the_hypothesis_says_too_often() -> None:
    ref = "dogs are sitting by the door"
    assert repeated_phrase(ref, "Dogs are sitting by the door.") is None
    assert repeated_phrase(ref, "are sitting by the door. Dogs are sitting") == "are sitting"
    assert repeated_phrase(ref, "Dogs are sitting by the door! door!") == "door door"
    assert repeated_phrase(ref, "Dogs are sitting by the door") is None
    assert repeated_phrase("thank you thank you", "Thank you, thank you.") is None  # as often as said
    assert repeated_phrase("thank you", "Thank you, thank you.") == "thank you"
    assert repeated_phrase("", "") is None
