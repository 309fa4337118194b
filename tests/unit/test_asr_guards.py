"""Commit guards (edge.asr.guards): the decoder loop of issue 16 reproduced with a fake decoder, each rule at its
threshold, and the guards' bookkeeping inside StreamingAsr."""

from __future__ import annotations

import numpy as np
import pytest

from edge.asr.guards import (
    CommitGuard,
    CommitGuardConfig,
    GuardConfigError,
    VoicedAudio,
    collapsed,
    fragment_runs,
    low_confidence,
    repeats,
)
from edge.asr.streaming import StreamingAsr, StreamingAsrConfig
from edge.asr.wer import repeated_phrase
from edge.vocab import NS, SAMPLE_RATE, Word

MS = NS // 1000
CFG = CommitGuardConfig()


def w(text: str, start_ms: float, end_ms: float, **decode: float) -> Word:
    return Word(text, round(start_ms * MS), round(end_ms * MS), **decode)


def texts(words: list[Word]) -> list[str]:
    return [x.text for x in words]


# ------------------------------------------------------------------------------------- the loop of issue 16
class FakeLoopingDecoder:
    """A fake transcribe function that replays what Whisper did on "Don't forget a jacket" (issue 16): while the
    speech grows it hears the first words, then, on a buffer that ends in silence, the sentence followed by two
    copies whose eight words all start within 15 ms of the end of the speech (and a decode that compresses at 2.39,
    under Whisper's 2.4). Times are relative to the stream start (speech 0.5-1.9 s)."""

    SENTENCE = (("Don't", 500, 800), ("forget", 800, 1200), ("a", 1200, 1350), ("jacket.", 1350, 1900))

    def __init__(self, t0_ns: int) -> None:
        self.t0_ns = t0_ns
        self.calls = 0

    def __call__(self, pcm: np.ndarray, t0_ns: int, *, prompt: str | None = None) -> list[Word]:
        self.calls += 1
        end_ms = (t0_ns - self.t0_ns) / MS + len(pcm) * 1000 / SAMPLE_RATE
        heard = [(t, a, b) for t, a, b in self.SENTENCE if b <= end_ms]
        if end_ms < 2400:  # the sentence is not over yet: what has been said so far
            return self._words(heard)
        copies = [(t, 1905 + 2 * k, 1905 + 2 * k) for k, (t, _, _) in enumerate(self.SENTENCE * 2)]
        return self._words(heard + copies)

    def _words(self, spec: list[tuple[str, float, float]]) -> list[Word]:
        return [Word(t, self.t0_ns + round(a * MS), self.t0_ns + round(b * MS), 0.9, -0.2, 0.1, 2.39)
                for t, a, b in spec]  # fmt: skip


def _replay(guards: CommitGuardConfig) -> tuple[list[Word], StreamingAsr]:
    """1 s of silence-free lead-in, the sentence, then 1.5 s of silence, in 0.1 s chunks with the VAD's verdict."""
    t0 = 5 * NS
    asr = StreamingAsr(FakeLoopingDecoder(t0), StreamingAsrConfig(step_s=1.0, guards=guards))
    words: list[Word] = []
    for k in range(35):
        voiced = 4 <= k < 21  # speech 0.4-2.1 s as the VAD reports it
        asr.insert_audio(np.zeros(SAMPLE_RATE // 10, np.float32), t0 + k * NS // 10, 0.9 if voiced else 0.05)
        words += asr.process()
    return words + asr.finish(), asr


def test_the_fake_decoder_reproduces_the_reported_loop_without_guards() -> None:
    words, _ = _replay(CommitGuardConfig(enabled=False))
    text = " ".join(texts(words))
    assert repeated_phrase("don't forget a jacket", text) is not None, text
    assert text.count("Don't forget a jacket") >= 2


def test_the_guards_commit_the_sentence_once() -> None:
    words, asr = _replay(CommitGuardConfig())
    assert texts(words) == ["Don't", "forget", "a", "jacket."]
    assert texts(asr.committed) == texts(words)
    dropped = asr.stats.dropped()
    assert dropped["collapsed"] == 8 and sum(dropped.values()) == 8, dropped
    assert asr.stats.committed_words == 4


# ------------------------------------------------------------------------------------------ low_confidence
@pytest.mark.parametrize(
    ("decode", "dropped"),
    [
        ({"compression_ratio": 2.4}, False),
        ({"compression_ratio": 2.41}, True),
        ({"no_speech_prob": 0.6, "avg_logprob": -1.5}, False),  # no-speech not above 0.6
        ({"no_speech_prob": 0.61, "avg_logprob": -1.0}, False),  # log-probability not below -1.0
        ({"no_speech_prob": 0.61, "avg_logprob": -1.01}, True),
        ({"no_speech_prob": 0.95, "avg_logprob": -0.2}, False),  # either cue alone is real quiet speech
    ],
)
def test_low_confidence_at_its_thresholds(decode: dict[str, float], dropped: bool) -> None:
    assert low_confidence(w("hello", 0, 300, **decode), CFG) is dropped


# ------------------------------------------------------------------------------------------------ collapsed
def test_collapsed_needs_three_starts_within_60_ms() -> None:
    assert collapsed([w("a", 0, 0), w("b", 30, 30), w("c", 60, 60)], CFG) == [True] * 3
    assert collapsed([w("a", 0, 0), w("b", 30, 30), w("c", 61, 61)], CFG) == [False] * 3
    assert collapsed([w("the", 1200, 1200), w("dogs", 1200, 1360)], CFG) == [False, False]  # a pair: kept
    run = [w("door.", 2380, 2580), *[w(x, 2580, 2580) for x in "abc"], w("later", 3000, 3200)]
    assert collapsed(run, CFG) == [False, True, True, True, False]


def test_collapsed_counts_a_run_that_began_in_the_committed_tail() -> None:
    tail = [w("x", 2000, 2000), w("y", 2010, 2010)]
    assert collapsed([w("z", 2020, 2020), w("next", 2500, 2700)], CFG, tail) == [True, False]
    assert collapsed([w("z", 2020, 2020)], CFG, tail[:1]) == [False]


# ------------------------------------------------------------------------------------------------- unvoiced
def _voiced(start_ms: int, end_ms: int, horizon_ms: int) -> VoicedAudio:
    v = VoicedAudio()
    v.add(0, start_ms * MS, False)
    v.add(start_ms * MS, end_ms * MS, True)
    v.add(end_ms * MS, horizon_ms * MS, False)
    return v


def test_unvoiced_after_the_speech_beyond_the_tail_margin() -> None:
    v = _voiced(1000, 2000, 9000)  # tail margin 300 ms
    assert v.unvoiced(w("late", 2300, 2500), CFG)
    assert not v.unvoiced(w("late", 2299, 2500), CFG)


def test_unvoiced_before_the_speech_beyond_the_lead_margin() -> None:
    v = _voiced(3000, 4000, 9000)  # the VAD's verdict comes late: lead margin 800 ms
    assert v.unvoiced(w("early", 1900, 2200), CFG)
    assert not v.unvoiced(w("early", 1900, 2201), CFG)


def test_unvoiced_waits_for_the_vads_verdict() -> None:
    v = _voiced(1000, 2000, 4000)
    assert v.unvoiced(w("late", 3000, 3200), CFG)  # 3200 + 800 <= 4000: judged
    assert not v.unvoiced(w("late", 3000, 3201), CFG)  # its audio's verdict may still be on its way
    assert not VoicedAudio().unvoiced(w("x", 0, 100), CFG)  # no audio noted: nothing to judge by


def test_unknown_speech_probability_counts_as_voiced() -> None:
    asr = StreamingAsr(lambda *a, **k: [], StreamingAsrConfig())
    for k in range(30):
        asr.insert_audio(np.zeros(1600, np.float32), k * NS // 10, None)
    assert asr._guard.voiced.spans() == [(0, 3 * NS)]


def test_voiced_spans_are_forgotten_beyond_keep_s() -> None:
    v = VoicedAudio(keep_s=10)
    for k in range(100):  # a voiced second every 2 s
        v.add(2 * k * NS, (2 * k + 1) * NS, True)
        v.add((2 * k + 1) * NS, (2 * k + 2) * NS, False)
    assert len(v.spans()) <= 6


# --------------------------------------------------------------------------------------------------- repeat
SAID = [w("dogs", 1000, 1400), w("are", 1400, 1700), w("sitting", 1700, 2000)]


def test_repeat_a_copy_said_at_under_50_ms_a_word_goes() -> None:
    fast = [w("dogs", 2100, 2150), w("are", 2150, 2200), w("sitting", 2200, 2249)]  # 149 ms for 3 words
    assert repeats(fast, SAID, CFG) == [True] * 3
    paced = [w("dogs", 2100, 2150), w("are", 2150, 2200), w("sitting", 2200, 2250)]  # 150 ms
    assert repeats(paced, SAID, CFG) == [False] * 3


def test_repeat_is_not_fooled_by_a_first_word_stretched_over_silence() -> None:
    """GRID: "Set" of "Set blue in A1 again" was aligned over 0.8 s of silence; the next sentence's "Set blue"
    (0.44 s, under half as long) is real speech."""
    first = [w("Set", 31930, 32730), w("blue", 32730, 33050), w("in", 33050, 33370), w("A1", 33370, 33810)]
    again = [w("Set", 36420, 36620), w("blue", 36620, 36860), w("with", 36860, 36980)]
    assert repeats(again, first, CFG) == [False] * 3


def test_repeat_the_same_audio_twice_goes_whatever_its_length() -> None:
    again = [w("sitting", 1690, 2400)]  # starts before the earlier "sitting" started: the same audio
    assert repeats(again, SAID, CFG) == [True]
    assert repeats([w("sitting", 1700, 2400)], SAID, CFG) == [False]


def test_repeat_keeps_a_phrase_said_again_at_the_same_pace() -> None:
    again = [w("dogs", 2500, 2900), w("are", 2900, 3200), w("sitting", 3200, 3500)]
    assert repeats(again, SAID, CFG) == [False] * 3


def test_repeat_one_word_only_as_an_immediate_repeat() -> None:
    assert repeats([w("sitting", 2000, 2049)], SAID, CFG) == [True]  # "sitting sitting", the second in 49 ms
    assert repeats([w("dogs", 2000, 2010)], SAID, CFG) == [False]  # "dogs" said earlier, not just before
    assert repeats([w("sitting.", 2000, 2050)], SAID, CFG) == [False]  # 50 ms: could be said again


def test_repeat_within_the_words_being_committed_and_of_a_partial_copy() -> None:
    cands = [w("by", 2000, 2200), w("the", 2200, 2400), w("door", 2400, 2600),
             w("dogs", 2600, 2610), w("are", 2610, 2620), w("sitting", 2620, 2630), w("by", 2630, 2640)]  # fmt: skip
    assert repeats(cands, SAID, CFG) == [False, False, False, True, True, True, True]


def test_repeat_looks_back_repeat_context_words_only() -> None:
    cfg = CommitGuardConfig(repeat_context_words=3)
    filler = [w(f"f{k}", 2000 + 100 * k, 2100 + 100 * k) for k in range(3)]
    copy = [w("dogs", 2400, 2401), w("are", 2401, 2402)]
    assert repeats(copy, SAID + filler, cfg) == [False, False]
    assert repeats(copy, SAID + filler, CFG) == [True, True]


# The final decode of RAVDESS 03-01-08-02-02-02-06 ("Dogs are sitting by the door", its onset cut off by the
# lead-in trim): Whisper wrote "so" twice and aligned the first copy to no audio (1.20-1.20 s).
SO_SO = [w("They're", 1100, 1200), w("so", 1200, 1200), w("so", 1200, 1440), w("silly", 1440, 1680),
         w("by", 1680, 1920), w("the", 1920, 2100), w("door.", 2100, 2340)]  # fmt: skip


def test_repeat_a_word_written_twice_for_one_saying_goes() -> None:
    assert repeats(SO_SO, [], CFG) == [False, False, True, False, False, False, False]
    guard = CommitGuard()
    guard.note_audio(0, 3 * NS, True)
    result = guard.filter(SO_SO, [])
    assert " ".join(texts(result.kept)) == "They're so silly by the door."
    assert texts(result.dropped["repeat"]) == ["so"] and sum(map(len, result.dropped.values())) == 1


def test_repeat_an_earlier_copy_said_in_under_50_ms_a_word_is_not_a_saying() -> None:
    assert repeats([w("so", 1200, 1249), w("so", 1249, 1440)], [], CFG) == [False, True]
    assert repeats([w("so", 1200, 1250), w("so", 1250, 1440)], [], CFG) == [False, False]  # 50 ms: said
    again = [w("thank", 1100, 1300), w("you", 1300, 1500)]
    hurried = [w("thank", 1000, 1040), w("you", 1040, 1099)]  # 99 ms for two words
    assert repeats([*hurried, *again], [], CFG) == [False, False, True, True]
    paced = [w("thank", 1000, 1040), w("you", 1040, 1100)]  # 100 ms
    assert repeats([*paced, *again], [], CFG) == [False] * 4


def test_repeat_a_copy_of_a_committed_word_that_had_no_audio_goes() -> None:
    """The commit-boundary form: the committed tail ends in the 0 ms copy, the next commit offers the word."""
    assert repeats([w("so", 1200, 1440), w("silly", 1440, 1680)], SO_SO[:2], CFG) == [True, False]


def test_repeat_keeps_a_word_said_twice() -> None:
    for word in ("no,", "very"):
        twice = [w(word, 1000, 1250), w(word, 1250, 1500), w("good", 1500, 1800)]
        assert repeats(twice, [], CFG) == [False, False, False], word
        assert repeats(twice[1:], twice[:1], CFG) == [False, False], word  # across a commit
        guard = CommitGuard()
        guard.note_audio(0, 3 * NS, True)
        assert guard.filter(twice, []).kept == twice, word


class FakeDoubledDecoder:
    """Replays the decodes of RAVDESS 03-01-08-02-02-02-06 through the benchmark's live path: the utterance's
    buffer starts at 1.1 s (the onset was trimmed away as a lead-in), one word at first, then the sentence with
    "so" written twice, which finish() commits at once. Times are relative to the stream start."""

    def __init__(self, t0_ns: int) -> None:
        self.t0_ns = t0_ns

    def __call__(self, pcm: np.ndarray, t0_ns: int, *, prompt: str | None = None) -> list[Word]:
        end_ms = (t0_ns - self.t0_ns) / MS + len(pcm) * 1000 / SAMPLE_RATE
        spec = SO_SO if end_ms > 2500 else [w("the", 1100, 1360)]
        t0 = self.t0_ns
        return [Word(x.text, t0 + x.start_ns, t0 + x.end_ns, 0.5, -0.76, 0.14, 0.89) for x in spec]


def _replay_doubled(guards: CommitGuardConfig) -> tuple[str, StreamingAsr]:
    t0 = 5 * NS
    asr = StreamingAsr(FakeDoubledDecoder(t0), StreamingAsrConfig(step_s=1.0, max_step_s=1.0, guards=guards))
    words: list[Word] = []
    # the VAD's verdicts as they arrived: speech from the chunk at 1.6 s to the one at 2.7 s
    for k in range(31):
        speech_prob = 0.86 if 16 <= k < 28 else 0.04
        asr.insert_audio(np.zeros(SAMPLE_RATE // 10, np.float32), t0 + k * NS // 10, speech_prob)
        words += asr.process()
    return " ".join(texts(words + asr.finish())), asr


def test_streaming_commits_a_word_written_twice_once() -> None:
    before, _ = _replay_doubled(CommitGuardConfig(enabled=False))
    assert before == "They're so so silly by the door."
    assert repeated_phrase("dogs are sitting by the door", before) is not None
    after, asr = _replay_doubled(CommitGuardConfig())
    assert after == "They're so silly by the door."
    assert asr.stats.dropped() == {"low_confidence": 0, "unvoiced": 0, "collapsed": 0, "fragment_run": 0, "repeat": 1}


# --------------------------------------------------------------------------------------------- fragment run
def _spread(tokens: list[str], start_ms: int = 1000, step_ms: int = 300) -> list[Word]:
    return [w(t, start_ms + k * step_ms, start_ms + (k + 1) * step_ms) for k, t in enumerate(tokens)]


def test_fragment_run_the_ravdess_token_string_keeps_one_token() -> None:
    """RAVDESS 03-01-05-01-02-01-18 (angry "Dogs are sitting by the door"): a string of "'S" over seconds, at a
    pace `collapsed` and `repeat` accept."""
    words = _spread(["D", "'I", *["'S"] * 7, "'S'"])
    assert fragment_runs(words, [], CFG) == [False, False, False] + [True] * 7
    guard = CommitGuard()
    guard.note_audio(0, 10 * NS, True)
    result = guard.filter(words, [])
    assert texts(result.kept) == ["D", "'I", "'S"] and len(result.dropped["fragment_run"]) == 7


def test_fragment_run_needs_three_fragments_in_a_row() -> None:
    assert fragment_runs(_spread(["'S", "'S"]), [], CFG) == [False, False]
    assert fragment_runs(_spread(["'S", "'S", "x", "'S"]), [], CFG) == [False] * 4  # not in a row
    assert fragment_runs(_spread(["'S", "'s", "'S'", "S."]), [], CFG) == [False, True, True, True]  # letters only
    assert fragment_runs(_spread(["I", "I", "I", "think"]), [], CFG) == [False, True, True, False]  # a stutter


def test_fragment_run_never_touches_real_words() -> None:
    assert fragment_runs(_spread(["no", "no", "no", "no"]), [], CFG) == [False] * 4  # two letters: a word
    assert fragment_runs(_spread(["very"] * 5), [], CFG) == [False] * 5


def test_fragment_run_counts_a_run_that_began_in_the_committed_tail() -> None:
    tail = _spread(["D", "'S", "'S"])
    assert fragment_runs(_spread(["'S", "'S"], start_ms=2000), tail, CFG) == [True, True]
    assert fragment_runs(_spread(["'S"], start_ms=2000), tail[:2], CFG) == [False]  # two in a row only


# --------------------------------------------------------------------------------------- guard and stats
def test_the_first_rule_that_fires_takes_the_word() -> None:
    guard = CommitGuard()
    guard.note_audio(0, 10 * NS, True)
    words = [w("ok", 100, 400), w("loop", 500, 500, compression_ratio=3.0), w("a", 500, 500), w("b", 500, 500)]
    result = guard.filter(words, [])
    assert texts(result.kept) == ["ok"]
    assert texts(result.dropped["low_confidence"]) == ["loop"] and texts(result.dropped["collapsed"]) == ["a", "b"]


def test_disabled_guards_keep_everything() -> None:
    guard = CommitGuard(CommitGuardConfig(enabled=False))
    words = [w("a", 0, 0), w("b", 0, 0), w("c", 0, 0, compression_ratio=9.0)]
    assert guard.filter(words, []).kept == words


def test_dropped_words_move_the_commit_point_and_are_counted_once() -> None:
    """A hypothesis whose loop stays in every decode: its words are dropped once, not offered again."""
    t0 = 0

    def decoder(pcm: np.ndarray, start_ns: int, *, prompt: str | None = None) -> list[Word]:
        real = [Word("hello", t0 + 100 * MS, t0 + 500 * MS), Word("there", t0 + 500 * MS, t0 + 900 * MS)]
        loop = [Word(x, t0 + 900 * MS, t0 + 900 * MS) for x in ("hello", "there", "hello")]
        tail = [Word("friend", t0 + 1500 * MS, t0 + 1900 * MS)] if len(pcm) > 2 * SAMPLE_RATE else []
        return real + loop + tail

    asr = StreamingAsr(decoder, StreamingAsrConfig(step_s=1.0, guards=CommitGuardConfig(vad_lead_s=0)))
    out: list[Word] = []
    for k in range(4):
        asr.insert_audio(np.zeros(SAMPLE_RATE, np.float32), t0 + k * NS, 0.9)
        out += asr.process()
    out += asr.finish()
    assert texts(out) == ["hello", "there", "friend"]
    assert asr.stats.dropped() == {"low_confidence": 0, "unvoiced": 0, "collapsed": 3, "fragment_run": 0, "repeat": 0}


def test_config_validation() -> None:
    for bad in ({"silence_avg_logprob": 0.5}, {"collapse_min_words": 1}, {"repeat_max_word_s": -0.1},
                {"vad_lead_s": -1.0}, {"silence_no_speech_prob": 2.0}, {"fragment_run_min": 1},
                {"fragment_max_chars": -1}):  # fmt: skip
        with pytest.raises(GuardConfigError):
            CommitGuardConfig(**bad)  # type: ignore[arg-type]
    assert GuardConfigError.exit_code == 2
