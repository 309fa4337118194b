"""Issue 16 on real speech: RAVDESS sentences through the live ASR path (the audio stage's VAD, AsrStage,
StreamingAsr, the live Whisper decode) commit no repeated phrase and about the right words.

The clips include two on which the live decode looped at the end of the speech before the commit guards
("Dogs are sitting by the door. Dogs are sitting by the door. Dogs are sitting"). RAVDESS lives in
../shared/data/affect/ravdess (skipped where ../shared is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.asr.streaming import StreamingAsrConfig
from edge.asr.wer import edit_counts, repeated_phrase
from tools.bench_asr_ravdess import LivePath, reference

pytestmark = [pytest.mark.shared, pytest.mark.slow]

CLIPS = (
    "Actor_16/03-01-04-02-02-01-16.flac",  # looped before the guards (fast replay)
    "Actor_05/03-01-05-02-02-02-05.flac",  # looped before the guards (0.1 s chunks, no VAD verdict yet)
    "Actor_01/03-01-01-01-01-01-01.flac",
    "Actor_08/03-01-03-02-02-01-08.flac",
    "Actor_13/03-01-06-01-01-02-13.flac",
    "Actor_22/03-01-08-02-02-02-22.flac",
)


# Whisper wrote "so" twice here and aligned the first copy to no audio ("so 1.20-1.20 so 1.20-1.44"): "They're so
# so silly by the door." before the `repeat` rule judged the earlier copy's pace too (docs/RELIABILITY.md)
DOUBLED = "Actor_06/03-01-08-02-02-02-06.flac"


@pytest.fixture(scope="module")
def live_path() -> LivePath:
    try:
        return LivePath()
    except Exception as e:  # noqa: BLE001 - any failure to load (engines not built on this checkout) skips
        pytest.skip(f"the live ASR path cannot load ({e}): run python tools/build_engine.py")


FAST = StreamingAsrConfig(max_step_s=StreamingAsrConfig().step_s)  # the --fast replay's fixed cadence


def _ravdess(shared_dir: Path) -> Path:
    root = shared_dir / "data" / "affect" / "ravdess"
    if not root.is_dir():
        pytest.skip(f"RAVDESS not found at {root}: see ../shared/data/affect/README.md")
    return root


def test_real_sentences_commit_no_repeated_phrase(shared_dir: Path, live_path: LivePath) -> None:
    from edge.asr import load_audio_16k

    root = _ravdess(shared_dir)
    total = None
    for name in CLIPS:
        clip = root / name
        ref = reference(clip)
        text, asr = live_path.stream(load_audio_16k(clip), FAST, realtime=False)
        assert repeated_phrase(ref, text) is None, (name, text, asr.stats.dropped())
        counts = edit_counts(ref, text)
        assert counts.insertions <= 1, (name, text)
        assert counts.errors <= 3, (name, text)  # at most half the sentence wrong on any one clip
        total = counts if total is None else total + counts
    assert total is not None
    assert total.errors / total.reference_words <= 0.3, total  # the live path loses some first words (BENCHMARKS)


def test_a_word_written_twice_for_one_saying_is_committed_once(shared_dir: Path, live_path: LivePath) -> None:
    from edge.asr import load_audio_16k

    clip = _ravdess(shared_dir) / DOUBLED
    ref = reference(clip)
    text, asr = live_path.stream(load_audio_16k(clip), FAST, realtime=False)
    assert repeated_phrase(ref, text) is None, (text, asr.stats.dropped())
    assert edit_counts(ref, text).insertions == 0, text
