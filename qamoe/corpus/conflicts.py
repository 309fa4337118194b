"""Words against the face: what the model reads when the words say one thing and the face another (issue 15,
part 4; tools/evaluate_conflicts.py).

A stream of held photos with one short sentence spoken over each. Photo i (a split of FER2013 in an order
hashed from the photos' ids, `qamoe.corpus.live_eval.play_order`) is held for `hold_s` seconds; the sentence
spoken over it is chosen by a hash of the photo's id (`pair_sentence`), never by its label, so every face
expression meets every kind of words by chance and each (words, face) cell is measured on the same stream.
The sentence is placed so that it ends `tail_s` before the hold does. The window that ends with the hold
(`item_valence`) then holds

  vision: photo i alone                                   (hold_s >= window_s),
  audio:  the end of sentence i and `tail_s` of silence   (the voice that said it),
  text:   sentence i's words and not sentence i-1's       (tail_s < context_s < hold_s + tail_s: the text
                                                          stream keeps the words that ended within context_s),

and the silence after each sentence lets the live ASR close the utterance before the window is read.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge.features.spec import FeatureSpec
from qamoe.corpus.synth import Voice, synthesize
from qamoe.errors import ConfigError

SAMPLE_RATE = 16000
# (kind of words, sentence): short, unambiguous, the same for every face
SENTENCES: tuple[tuple[str, str], ...] = (
    ("positive", "I love it. It is wonderful."),
    ("negative", "I hate it. It is awful."),
    ("neutral", "The box is on the table."),
)
VOICE = Voice("en-us", "m3", 150, 50)  # the voice of tools/make_demo.py and the shipped-model test


@dataclass(frozen=True)
class ConflictLayout:
    """How long each photo is held and where its sentence ends (see the module docstring)."""

    hold_s: float = 6.5
    tail_s: float = 2.0

    def check(self, spec: FeatureSpec) -> None:
        """ConfigError unless the window at each hold's end reads photo i, sentence i and not sentence i-1."""
        context = spec.text.context_s or 0.0
        hops = self.hold_s / spec.hop_s
        problems = []
        if self.hold_s < spec.window_s or not math.isclose(hops, round(hops)):
            problems.append(f"hold {self.hold_s} s: a multiple of the hop ({spec.hop_s} s) of at least the window "
                            f"({spec.window_s} s)")  # fmt: skip
        if not 0.5 <= self.tail_s < min(context, self.hold_s):
            problems.append(f"tail {self.tail_s} s: at least 0.5 s (the ASR closes the sentence) and under the text "
                            f"context ({context} s) and the hold")  # fmt: skip
        if self.hold_s + self.tail_s <= context:
            problems.append(f"hold + tail = {self.hold_s + self.tail_s} s: must exceed the text context ({context} s), "
                            "or the previous photo's sentence is still in the window's words")  # fmt: skip
        if problems:
            raise ConfigError("; ".join(problems))


def pair_sentence(key: str) -> int:
    """The index in SENTENCES of the sentence spoken over the photo `key`: a hash of the id, never the label."""
    return int(hashlib.sha256(f"sentence:{key}".encode()).hexdigest(), 16) % len(SENTENCES)


def face_group(label: float) -> str:
    """The face's expression group from its valence target: happy (> 0), neutral (0), negative (< 0)."""
    return "happy" if label > 0 else "negative" if label < 0 else "neutral"


def speech_track(sentences: Sequence[int], layout: ConflictLayout, voice: Voice = VOICE) -> np.ndarray:
    """Mono float32 PCM at 16 kHz for len(sentences) holds: SENTENCES[s] spoken over hold i, ending tail_s
    before the hold ends. ConfigError when a sentence is longer than the hold leaves room for."""
    hold = round(layout.hold_s * SAMPLE_RATE)
    tail = round(layout.tail_s * SAMPLE_RATE)
    spoken = {s: synthesize(SENTENCES[s][1], voice) for s in sorted(set(sentences))}
    pcm = np.zeros(hold * len(sentences), np.float32)
    for i, s in enumerate(sentences):
        speech = spoken[s]
        start = (i + 1) * hold - tail - speech.size
        if start < i * hold:
            raise ConfigError(f"{SENTENCES[s][1]!r} lasts {speech.size / SAMPLE_RATE:.2f} s: more than hold - tail "
                              f"({layout.hold_s - layout.tail_s} s); hold the photos longer")  # fmt: skip
        pcm[start : start + speech.size] = speech
    return pcm


@dataclass(frozen=True)
class Cell:
    """The valences read for one (mode, words, face) cell."""

    mode: str
    words: str
    face: str
    n: int
    mean: float
    sd: float


def cells(mode: str, valence: np.ndarray, words: Sequence[str], faces: Sequence[str]) -> list[Cell]:
    """Mean and sd of the finite valences per (words, face) pair present, in SENTENCES' and group order."""
    valence = np.asarray(valence, np.float64)
    words_arr, faces_arr = np.asarray(words), np.asarray(faces)
    out = []
    for w in [k for k, _ in SENTENCES]:
        for f in ("happy", "neutral", "negative"):
            v = valence[(words_arr == w) & (faces_arr == f) & np.isfinite(valence)]
            if v.size:
                out.append(Cell(mode, w, f, int(v.size), float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0))
    return out


def format_cells(rows: Sequence[Cell]) -> str:
    """A markdown table: words down, face across, one block per mode; `mean (n)` per cell."""
    faces = ("happy", "neutral", "negative")
    lines = []
    for mode in dict.fromkeys(r.mode for r in rows):
        lines += ["", f"{mode}:", "", "| words \\ face | " + " | ".join(faces) + " |", "|---" * 4 + "|"]
        for w in dict.fromkeys(r.words for r in rows if r.mode == mode):
            got = {r.face: r for r in rows if r.mode == mode and r.words == w}
            lines.append(f"| {w} | " + " | ".join(
                f"{got[f].mean:+.2f} ({got[f].n})" if f in got else "-" for f in faces) + " |")  # fmt: skip
    return "\n".join(lines).lstrip("\n")
