"""Sliding windows filled by timestamp: slots, masks, release timing, bounds."""

from __future__ import annotations

import numpy as np
import pytest

from edge.vocab import NS, Word
from edge.windows import StreamGeometry, WindowAssembler, WindowConfig, WindowConfigError

AUDIO = StreamGeometry("audio", 25.0, 100, 3)
VISION = StreamGeometry("vision", 10.0, 40, 2)
T0 = 5 * NS


def _asm(**kw) -> WindowAssembler:
    return WindowAssembler(WindowConfig(**kw), [AUDIO, VISION], T0)


def _feed_audio(asm: WindowAssembler, seconds: float, skip: tuple[float, float] | None = None) -> None:
    for k in range(int(seconds * 25)):
        t = T0 + k * 40_000_000
        if skip and skip[0] * NS <= t - T0 < skip[1] * NS:
            continue
        asm.push("audio", t, np.full(3, k, np.float32))


def test_windows_release_at_end_plus_lateness() -> None:
    asm = _asm(lateness_s=0.4)
    _feed_audio(asm, 6.0)
    assert asm.pop_ready(T0 + int(0.89 * NS)) == []
    first = asm.pop_ready(T0 + int(0.9 * NS))
    assert [w.index for w in first] == [0]  # the first window ends one hop after the start
    assert first[0].end_ns == T0 + NS // 2 and first[0].start_ns == T0 - int(3.5 * NS)
    assert first[0].masks["audio"][:-13].sum() == 0 and first[0].masks["audio"][-12:].all()
    nxt = asm.pop_ready(T0 + int(1.9 * NS))
    assert [w.index for w in nxt] == [1, 2]
    assert nxt[1].end_ns == T0 + int(1.5 * NS)


def test_slots_hold_the_sample_of_their_time() -> None:
    asm = _asm()
    _feed_audio(asm, 5.0)
    w1 = next(w for w in asm.pop_ready(T0 + 5 * NS) if w.start_ns == T0 + NS // 2)  # frame 13 (520 ms) in slot 0
    assert w1.masks["audio"].all()
    np.testing.assert_array_equal(w1.feats["audio"][:, 0], np.arange(13, 113))


def test_gap_is_masked_not_shifted() -> None:
    asm = _asm()
    _feed_audio(asm, 4.0, skip=(1.0, 2.0))
    w = next(w for w in asm.pop_ready(T0 + 5 * NS) if w.start_ns == T0)
    assert not w.masks["audio"][25:50].any() and w.masks["audio"][:25].all() and w.masks["audio"][50:].all()
    assert w.feats["audio"][50, 0] == 50  # later frames stay in their own slots
    assert w.presence() == {"audio": True, "vision": False}


def test_invalid_samples_are_masked() -> None:
    asm = _asm()
    for k in range(40):
        asm.push("vision", T0 + k * 100_000_000 + 1, np.ones(2, np.float32), valid=k % 2 == 0)
    w = next(w for w in asm.pop_ready(T0 + 5 * NS) if w.start_ns == T0)
    np.testing.assert_array_equal(w.masks["vision"], np.arange(40) % 2 == 0)
    assert not w.feats["vision"][1].any()


def test_words_within_the_text_context() -> None:
    asm = _asm(text_context_s=2.0)
    words = [Word(f"w{i}", T0 + i * NS, T0 + i * NS + NS // 2) for i in range(8)]
    asm.push_words(words)
    w0 = asm.pop_ready(T0 + int(4.5 * NS))[-1]  # ends at 4 s: words ending in [2, 4] s
    assert [w.text for w in w0.words] == ["w2", "w3"]


def test_falling_behind_drops_and_counts() -> None:
    asm = _asm(max_pending_windows=3)
    out = asm.pop_ready(T0 + 20 * NS)
    # windows 0..38 end by 19.55 s (at 0.5, 1.0, ... 19.5 s); the newest 3 are kept
    assert [w.index for w in out] == [36, 37, 38] and asm.dropped_windows == 36


def test_buffers_are_trimmed() -> None:
    asm = _asm()
    _feed_audio(asm, 60.0)
    asm.pop_ready(T0 + 60 * NS)
    assert len(asm._streams["audio"].times) <= 4.5 * 25


@pytest.mark.parametrize("kw", [{"hop_s": 0.0}, {"hop_s": 5.0}, {"hop_s": 1.5, "length_s": 4.0}, {"lateness_s": -1}])
def test_bad_geometry(kw) -> None:
    with pytest.raises(WindowConfigError):
        WindowConfig(**kw)


def test_spec_and_window_must_agree() -> None:
    with pytest.raises(WindowConfigError, match="disagree"):
        WindowAssembler(WindowConfig(length_s=3.0), [AUDIO], T0)
