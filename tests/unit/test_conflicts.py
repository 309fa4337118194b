"""Words against the face (qamoe.corpus.conflicts, tools/evaluate_conflicts.py): the stream's layout puts
each photo's sentence, and only it, in the window read for the photo; the pairing never sees a label."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

from edge.features.spec import default_feature_spec
from qamoe.corpus.conflicts import (
    SAMPLE_RATE,
    SENTENCES,
    ConflictLayout,
    cells,
    face_group,
    format_cells,
    pair_sentence,
    speech_track,
)
from qamoe.corpus.fer import FerFace
from qamoe.corpus.live_eval import in_progress_valence, item_valence, item_windows, play_order
from qamoe.errors import ConfigError

SPEC = default_feature_spec()


def test_the_default_layout_fits_the_window_and_the_text_context() -> None:
    ConflictLayout().check(SPEC)
    context = SPEC.text.context_s or 0.0
    layout = ConflictLayout()
    assert layout.tail_s < context < layout.hold_s + layout.tail_s and layout.hold_s >= SPEC.window_s


@pytest.mark.parametrize(("hold", "tail", "words"), [
    (3.5, 1.0, "at least the window"),
    (6.3, 2.0, "multiple of the hop"),
    (6.0, 2.0, "previous photo's sentence"),  # 8.0 s = the text context: sentence i-1 would still be read
    (6.5, 0.2, "ASR closes"),
    (12.0, 8.5, "under the text context"),
])  # fmt: skip
def test_a_layout_that_would_mix_photos_or_sentences_is_refused(hold: float, tail: float, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        ConflictLayout(hold, tail).check(SPEC)


def _faces(labels: list[float]) -> list[FerFace]:
    return [FerFace(f"fer2013/Training_{i:05d}", i, "x", lab, "test") for i, lab in enumerate(labels)]


def test_label_independent_pairing_and_order() -> None:
    """The photos' order and the sentence over each come from their ids: permuting the labels changes
    neither, and every kind of words is paired with a share of the photos."""
    rng = np.random.default_rng(0)
    labels = list(rng.choice([-2.0, 0.0, 2.0], 300))
    a = play_order(_faces(labels))
    b = play_order(_faces(list(rng.permutation(labels))))
    assert [f.key for f in a] == [f.key for f in b]
    assert [pair_sentence(f.key) for f in a] == [pair_sentence(f.key) for f in b]
    share = np.bincount([pair_sentence(f.key) for f in a], minlength=len(SENTENCES)) / len(a)
    assert share.min() > 0.25, share


def test_face_groups_follow_the_sign_of_the_valence() -> None:
    assert [face_group(v) for v in (2.0, 0.0, -1.5, -2.0)] == ["happy", "neutral", "negative", "negative"]


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (apt-get install espeak-ng)")
def test_each_sentence_ends_tail_before_its_hold_and_silence_follows() -> None:
    layout = ConflictLayout()
    sentences = [0, 1, 2, 1]
    pcm = speech_track(sentences, layout)
    hold, tail = round(layout.hold_s * SAMPLE_RATE), round(layout.tail_s * SAMPLE_RATE)
    assert pcm.dtype == np.float32 and pcm.size == hold * len(sentences)
    for i in range(len(sentences)):
        segment = pcm[i * hold : (i + 1) * hold]
        voiced = np.flatnonzero(np.abs(segment) > 1e-3)
        assert voiced.size, i
        last = voiced[-1]
        # the synthesised clip ends tail_s before the hold; espeak-ng ends it with ~0.4 s of its own silence
        assert hold - tail - 0.6 * SAMPLE_RATE <= last < hold - tail, (i, last / SAMPLE_RATE)
        assert voiced[0] > 0, "the sentence starts inside its hold, after the previous one's silence"
    with pytest.raises(ConfigError, match="hold the photos longer"):
        speech_track([0], dataclasses.replace(layout, hold_s=4.0, tail_s=3.5))


def test_cells_average_each_words_and_face_pair_and_skip_what_was_not_read() -> None:
    valence = np.array([1.0, 3.0, -2.0, np.nan, 0.5])
    words = ["positive", "positive", "negative", "negative", "neutral"]
    faces = ["happy", "happy", "negative", "happy", "neutral"]
    rows = cells("both", valence, words, faces)
    got = {(c.words, c.face): (c.n, c.mean) for c in rows}
    assert got == {("positive", "happy"): (2, 2.0), ("negative", "negative"): (1, -2.0), ("neutral", "neutral"): (1, 0.5)}
    table = format_cells(rows)
    assert "| positive | +2.00 (2) | - | - |" in table and table.startswith("both:")


def _window(end_s: float, valence: float | None) -> dict:
    return {"window": {"end": {"mono_ns": int(1e9 * (100 + end_s))}}, "valence": valence}


def test_each_item_reads_the_window_ending_nearest_its_end_within_a_hop() -> None:
    windows = [_window(t, t) for t in (0.5, 1.0, 1.5, 2.0, 4.0)] + [_window(4.5, None)]
    spans = [(0.0, 1.0), (1.0, 2.1), (2.1, 3.1), (3.1, 4.5)]
    got = item_windows(windows, spans, 0.5)
    # 3.1 s: the nearest ends are 4.0 s (0.9 s away) and 2.0 s (1.1 s), both more than a hop: nothing read
    assert [None if w is None else w["window"]["end"]["mono_ns"] for w in got] == [
        windows[1]["window"]["end"]["mono_ns"], windows[3]["window"]["end"]["mono_ns"], None,
        windows[5]["window"]["end"]["mono_ns"]]  # fmt: skip
    np.testing.assert_array_equal(item_valence(windows, spans, 0.5), [1.0, 2.0, np.nan, np.nan])
    assert item_windows([], spans, 0.5) == [None] * 4


def test_in_progress_reads_the_windows_inside_an_item_before_its_last_one() -> None:
    windows = [_window(t, t) for t in np.arange(0.5, 12.01, 0.5)]
    windows[13]["valence"] = None  # 7.0 s: a window without a valence is left out
    spans = [(1.0, 5.0), (6.0, 8.0), (9.0, 9.5)]
    got = in_progress_valence(windows, spans, 0.5, 1.5)
    # item 1: windows ending 2.5 .. 4.5 (>= 1.0 + 1.5, < 5.0 - 0.25), not the one at 5.0 that item_windows reads
    # item 2: 7.5 only (7.0 has no valence); item 3: too short for any
    np.testing.assert_allclose(got, [3.5, 7.5, np.nan])
    assert np.isnan(in_progress_valence([], spans, 0.5, 1.5)).all()
    np.testing.assert_allclose(in_progress_valence(windows, spans[:1], 0.5, 0.0), [2.75])  # 1.0 .. 4.5
