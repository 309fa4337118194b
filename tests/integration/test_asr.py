"""The offline ASR wrapper (`edge.asr`): real speech on GRID clips, silence and noise, word timing, errors.

Needs the built `whisper-tiny.en` (`python tools/build_engine.py`; skipped with that reason where absent).
GRID clips come from ../shared/media/grid (skipped where ../shared is absent); espeak-ng speech is synthesised
when espeak-ng is installed. Provenance of the GRID clips: ../shared/README.md (CC BY 4.0).
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from edge.asr import (
    AsrConfig,
    AsrConfigError,
    AsrInputError,
    AsrModelError,
    Transcriber,
    Word,
    WordError,
    load_audio_16k,
    resolve_model_dir,
)
from edge.asr.wer import normalise_words
from edge.manifest import ManifestError
from tools._grid import grid_sentence

REPO_ROOT = Path(__file__).resolve().parents[2]
GRID = REPO_ROOT.parent / "shared" / "media" / "grid"
SR = 16_000
T0 = 7_000_000_000  # an arbitrary monotonic capture time of the first sample

normalise = normalise_words


def test_grid_names_and_normalisation() -> None:
    assert grid_sentence(Path("id2_vcd_swwp2s.mpg")) == ["set", "white", "with", "p", "two", "soon"]
    assert grid_sentence(Path("lwbsza.mpg")) == ["lay", "white", "by", "s", "zero", "again"]
    assert normalise("Set white with P2 soon.") == ["set", "white", "with", "p", "two", "soon"]
    assert normalise("Lay white by S0 again.") == ["lay", "white", "by", "s", "zero", "again"]
    with pytest.raises(ValueError):
        grid_sentence(Path("talk.wav"))


@pytest.fixture(scope="module")
def transcriber() -> Transcriber:
    try:
        return Transcriber(AsrConfig())
    except ManifestError as exc:
        pytest.skip(f"whisper-tiny.en is not built ({exc}): run `python tools/build_engine.py`")


def _grid_clips() -> list[Path]:
    clips = sorted(GRID.glob("*.mpg"))
    if not clips:
        pytest.skip(f"GRID clips not found in {GRID}: these tests need ../shared beside the repository")
    return clips


@pytest.mark.shared
def test_grid_transcripts_contain_the_encoded_words(transcriber: Transcriber) -> None:
    clips = _grid_clips()
    assert len(clips) == 11
    report, passed = [], 0
    for clip in clips:
        heard = normalise(" ".join(w.text for w in transcriber.transcribe(load_audio_16k(clip), T0)))
        hits = sum(w in heard for w in grid_sentence(clip))
        passed += hits >= 4
        report.append(f"{clip.name}: {hits}/6 {heard}")
    assert passed >= 9, "\n".join(report)


@pytest.mark.shared
def test_grid_word_times_follow_the_alignment(transcriber: Transcriber) -> None:
    _grid_clips()
    clip = GRID / "id2_vcd_swwp2s.mpg"
    audio = load_audio_16k(clip)
    assert audio.dtype == np.float32 and audio.ndim == 1 and abs(audio.shape[0] / SR - 3.0) < 0.05
    words = transcriber.transcribe(audio, T0)
    starts = [w.start_ns for w in words]
    assert starts == sorted(starts) and all(T0 <= w.start_ns <= w.end_ns <= T0 + 3_100_000_000 for w in words)
    # swwp2s.align (25 kHz ticks): "set" 12250-19250, "soon" 43250-55250 -> 0.49 s and 2.21 s
    first, last = words[0], words[-1]
    assert normalise(first.text) == ["set"] and normalise(last.text) == ["soon"], words
    assert abs((first.start_ns - T0) / 1e9 - 0.49) < 0.4 and abs((last.end_ns - T0) / 1e9 - 2.21) < 0.4
    for w in words:
        assert 0.0 < w.prob <= 1.0 and w.avg_logprob <= 0.0 and w.no_speech_prob < 0.6
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.text = "get"  # type: ignore[misc]


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng (apt install espeak-ng)")
def test_synthetic_speech(transcriber: Transcriber, tmp_path: Path) -> None:
    # (tiny.en hears espeak's "brown fox" as "round fark" whatever the beam: a spoken opinion is the use case)
    sentence = "i really enjoyed this movie and the music was wonderful"
    wav = tmp_path / "speech.wav"
    espeak = ["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), sentence]
    subprocess.run(espeak, check=True, timeout=60)
    heard = normalise(" ".join(w.text for w in transcriber.transcribe(load_audio_16k(wav), 0)))
    assert sum(w in heard for w in sentence.split()) >= 8, heard


def _noise(level: float, seconds: float = 3.0) -> np.ndarray:
    return (np.random.default_rng(3).standard_normal(int(seconds * SR)) * level).astype(np.float32)


@pytest.mark.parametrize("audio", [np.zeros(3 * SR, np.float32), _noise(0.003)], ids=["silence", "noise"])
def test_silence_and_low_noise_give_no_words(transcriber: Transcriber, audio: np.ndarray) -> None:
    assert transcriber.transcribe(audio, T0) == []
    assert transcriber.transcribe(audio[:100], T0) == []  # too short to decode


def test_hallucination_guard_without_vad(transcriber: Transcriber) -> None:
    # Without the VAD, tiny.en writes text into silence and noise (e.g. " ." and " sub"); the no-speech rule
    # must drop it.
    bare = Transcriber(AsrConfig(vad_filter=False, model=str(transcriber.model_dir)))
    assert bare.transcribe(np.zeros(3 * SR, np.float32), T0) == []
    assert bare.transcribe(_noise(0.003), T0) == []


def test_segments_are_filtered_and_words_timed(
    transcriber: Transcriber, monkeypatch: pytest.MonkeyPatch
) -> None:
    def seg(text: str, no_speech: float, logprob: float, ratio: float = 1.2) -> SimpleNamespace:
        words = [SimpleNamespace(word=f" {t}", start=0.5 + i, end=0.9 + i, probability=0.8)
                 for i, t in enumerate(text.split())]
        return SimpleNamespace(text=text, no_speech_prob=no_speech, avg_logprob=logprob,
                               compression_ratio=ratio, words=words)

    segments = [
        seg("hello there", 0.7, -0.5),  # unsure it is speech, but confident text: kept
        seg("thank you", 0.7, -1.2),  # the no-speech rule: dropped
        seg("you you you", 0.1, -0.2, ratio=2.6),  # a decoding loop: dropped
        seg("quiet words", 0.2, -1.5),  # low confidence alone is not silence: kept
    ]
    fake = SimpleNamespace(transcribe=lambda audio, **kw: (iter(segments), None))
    monkeypatch.setattr(transcriber, "_model", fake)
    words = transcriber.transcribe(np.zeros(SR, np.float32), T0)
    assert [w.text for w in words] == ["hello", "there", "quiet", "words"]
    assert words[1].start_ns == T0 + 1_500_000_000 and words[1].end_ns == T0 + 1_900_000_000
    assert words[2].avg_logprob == -1.5 and words[0].no_speech_prob == 0.7


def test_config_and_model_errors(transcriber: Transcriber, tmp_path: Path) -> None:
    bad_configs = ({"beam_size": 0}, {"temperatures": ()}, {"no_speech_threshold": 1.5},
                   {"logprob_threshold": 1}, {"device": "tpu"}, {"model": " "})
    for bad in bad_configs:
        with pytest.raises(AsrConfigError):
            AsrConfig(**bad)
    with pytest.raises(AsrModelError, match="never downloads.*local"):
        Transcriber(AsrConfig(model="base.en"))
    with pytest.raises(AsrModelError, match="does not exist"):
        resolve_model_dir(str(tmp_path / "nowhere"))
    with pytest.raises(AsrModelError, match="model.bin"):
        resolve_model_dir(str(tmp_path))
    assert resolve_model_dir(str(transcriber.model_dir)) == transcriber.model_dir


def test_input_errors(transcriber: Transcriber, tmp_path: Path) -> None:
    with pytest.raises(AsrInputError, match="1-D"):
        transcriber.transcribe(np.zeros((2, SR), np.float32), 0)
    with pytest.raises(AsrInputError, match="int16"):
        transcriber.transcribe(np.zeros(SR, np.int16), 0)
    with pytest.raises(AsrInputError, match="NaN"):
        transcriber.transcribe(np.full(SR, np.nan, np.float32), 0)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio at all")
    with pytest.raises(AsrInputError, match="cannot decode"):
        load_audio_16k(junk)


def test_word_validation() -> None:
    Word("ok", 0, 0, 1.0, 0.0, 0.0, 1.0)
    good = {"text": "ok", "start_ns": 0, "end_ns": 0, "prob": 1.0, "avg_logprob": 0.0, "no_speech_prob": 0.0,
            "compression_ratio": 1.0}
    bad_fields = ({"text": " ok"}, {"text": ""}, {"end_ns": -1}, {"prob": 1.5}, {"avg_logprob": float("nan")})
    for bad in bad_fields:
        with pytest.raises(WordError):
            Word(**{**good, **bad})


def test_token_cap_follows_the_audio_length(transcriber: Transcriber) -> None:
    """A decode may add at most rate x seconds + margin new tokens (capped below faster-whisper's limit), so a
    looping decode costs a bounded time; None lifts the cap; a non-positive rate is refused."""
    from edge.asr.transcriber import MAX_NEW_TOKENS, TOKEN_MARGIN

    assert transcriber._token_cap(3 * SR) == {"max_new_tokens": 24 + TOKEN_MARGIN}
    assert transcriber._token_cap(600 * SR) == {"max_new_tokens": MAX_NEW_TOKENS}
    assert dataclasses.replace(transcriber.config, max_tokens_per_s=None).max_tokens_per_s is None
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(AsrConfigError, match="max_tokens_per_s"):
            AsrConfig(max_tokens_per_s=bad)
