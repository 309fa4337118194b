"""The rule that chooses the next default checkpoint among candidates (seeds of one recipe), fixed before any
test split is read (issue 15; docs/MODEL_CARD.md, "How the default was chosen").

Input: each candidate's valid-split report of `tools/evaluate_release.sh CK OUT valid` (the held-out *valid*
speakers through the live path, `tools/evaluate_affect_live.py`) and its checkpoint's validation score
(`tools/train.py`: the mean of clean and spectrum-corrupted validation MAE, per source; lower is better).

  1. most voice targets met: AUC, happy - negative and |neutral| (qamoe.corpus.affect_eval.TARGETS) for RAVDESS
     and EmoDB, at each clip's end and in progress: 12 targets; a corpus missing from a report meets none of its
  2. then the lower validation score

A report that does not say it measured the valid split is refused: choosing on test speakers would make every
test number reported for the choice optimistic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qamoe.errors import ConfigError

VOICE_CORPORA = ("ravdess", "emodb")
VOICE_TARGETS = ("auc", "happy_minus_negative", "neutral_abs")
VIEWS = ("rows", "in_progress_rows")  # the window at each clip's end; the windows while it is being spoken


class SelectionError(ConfigError):
    """Candidates that cannot be compared by the rule (no candidate, a report not on the valid split): exit 2."""


@dataclass(frozen=True)
class Candidate:
    name: str
    met: int
    total: int
    valid_score: float


def targets_met(voice_report: Mapping[str, Any]) -> tuple[int, int]:
    """(targets met, targets counted) in one voice-live report of the valid split."""
    split = voice_report.get("split")
    if split != "valid":
        said = f"the {split} split" if split else "no split (a report older than this rule)"
        raise SelectionError(f"the report measured {said}; selection reads valid-split reports only "
                             "(tools/evaluate_release.sh CK OUT valid)")  # fmt: skip
    met, total = 0, 0
    for view in VIEWS:
        by_corpus = {r["dataset"]: r for r in voice_report.get(view, [])}
        for corpus in VOICE_CORPORA:
            flags = by_corpus.get(corpus, {}).get("met", {})
            met += sum(bool(flags.get(t, False)) for t in VOICE_TARGETS)
            total += len(VOICE_TARGETS)
    return met, total


def rank(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Best first: most targets met, then the lowest validation score; the name breaks an exact tie."""
    if not candidates:
        raise SelectionError("no candidates to choose from")
    return sorted(candidates, key=lambda c: (-c.met, c.valid_score, c.name))
