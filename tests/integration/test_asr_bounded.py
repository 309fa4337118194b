"""The live ASR's bounded decode (edge.asr.bounded): a trimmed encoder window and one decode per call."""

from __future__ import annotations

import numpy as np
import pytest

from edge.asr import AsrConfig, AsrConfigError, AsrInputError, Transcriber, load_audio_16k
from edge.asr.bounded import LIVE_ENCODER_PAD_S, trimmed_frames
from edge.asr.transcriber import streaming_config
from edge.asr.wer import normalise_words
from edge.manifest import ManifestError
from tests.integration.test_asr import _grid_clips
from tools._grid import grid_sentence

SR = 16_000


def test_trimmed_frames_keep_content_and_pad_in_whole_seconds() -> None:
    mel = np.zeros((80, 3000), np.float32)
    mel[:, :250] = 0.5
    assert trimmed_frames(mel, 300) == 600  # 250 + 300 -> 6 s
    assert trimmed_frames(mel, 0) == 300
    assert trimmed_frames(mel[None], 300) == 600  # batched input too
    mel[3, 2999] = -0.1  # content up to the end: the whole window
    assert trimmed_frames(mel, 300) == 3000
    assert trimmed_frames(np.zeros((80, 3000), np.float32), 0) == 100  # never empty
    assert trimmed_frames(np.ones((80, 1200), np.float32), 300) == 1200  # never more than it was given


def test_streaming_config_and_its_errors() -> None:
    live = streaming_config(AsrConfig())
    assert live.temperatures == (0.0,) and live.single_decode and live.encoder_pad_s == LIVE_ENCODER_PAD_S
    assert streaming_config(AsrConfig(single_decode=True, encoder_pad_s=1.0)).encoder_pad_s == 1.0
    with pytest.raises(AsrConfigError, match="single_decode"):
        AsrConfig(encoder_pad_s=3.0)  # a trimmed window with the seek loop: remainders decode badly
    with pytest.raises(AsrConfigError, match="0..30"):
        AsrConfig(single_decode=True, encoder_pad_s=-1.0)


@pytest.fixture(scope="module")
def bounded() -> Transcriber:
    try:
        return Transcriber(streaming_config(AsrConfig()))
    except ManifestError as exc:
        pytest.skip(f"whisper-tiny.en is not built ({exc}): run `python tools/build_engine.py`")


@pytest.mark.shared
def test_bounded_decode_hears_grid_with_one_short_encoder_pass(
    bounded: Transcriber, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = type(bounded._model).__mro__[1]  # faster-whisper's WhisperModel: sees the trimmed features
    frames: list[int] = []
    real = parent.encode

    def counting(self, features):  # type: ignore[no-untyped-def]
        frames.append(features.shape[-1])
        return real(self, features)

    monkeypatch.setattr(parent, "encode", counting)
    report, passed = [], 0
    for clip in _grid_clips():
        audio = load_audio_16k(clip)
        frames.clear()
        words = bounded.transcribe(np.concatenate([audio, np.zeros(SR, np.float32)]), 0)
        assert len(frames) == 1, f"{clip.name}: {len(frames)} encoder passes"  # no remainder decode
        # ~4 s of audio + 3 s of padding, in whole seconds: 700-800 frames, not Whisper's 3000
        assert frames[0] <= 100 * int(np.ceil(len(audio) / SR + 1 + LIVE_ENCODER_PAD_S)), frames
        heard = normalise_words(" ".join(w.text for w in words))
        hits = sum(w in heard for w in grid_sentence(clip))
        passed += hits >= 4
        report.append(f"{clip.name}: {hits}/6 {heard}")
        starts = [w.start_ns for w in words]
        assert starts == sorted(starts) and all(0 <= w.start_ns <= w.end_ns <= 5 * 10**9 for w in words)
    assert passed >= 9, "\n".join(report)


def _noise(level: float, seconds: float = 4.0) -> np.ndarray:
    return (np.random.default_rng(5).standard_normal(int(seconds * SR)) * level).astype(np.float32)


@pytest.mark.parametrize("vad", [True, False], ids=["vad", "no-vad"])
@pytest.mark.parametrize("audio", [np.zeros(4 * SR, np.float32), _noise(0.003), _noise(0.05)],
                         ids=["silence", "low-noise", "loud-noise"])
def test_bounded_decode_writes_nothing_into_silence_or_noise(
    bounded: Transcriber, audio: np.ndarray, vad: bool
) -> None:
    """The trimmed window must not let the decoder fill silence: the no-speech rule holds without the VAD too."""
    config = streaming_config(AsrConfig(vad_filter=vad, model=str(bounded.model_dir)))
    transcriber = bounded if vad else Transcriber(config)
    assert transcriber.transcribe(audio, 0) == []


def test_single_decode_refuses_more_than_one_window(bounded: Transcriber) -> None:
    with pytest.raises(AsrInputError, match="at most 30 s"):
        bounded.transcribe(np.zeros(31 * SR, np.float32), 0)
