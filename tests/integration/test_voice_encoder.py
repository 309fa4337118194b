"""Whisper encoder columns in the audio extractor's blocks (edge.features.voice_encoder): causal, deterministic,
aligned with the model frames, and clear about bad input."""

from __future__ import annotations

import numpy as np
import pytest

from edge.features.audio_quality import AudioInputError
from edge.features.voice_encoder import VoiceEncoderColumns, VoiceEncoderConfig, block_rows
from tests.integration.test_asr import _grid_clips

BLOCK = 5120


@pytest.fixture(scope="module")
def encoder() -> VoiceEncoderColumns:
    return VoiceEncoderColumns()


def _run(enc: VoiceEncoderColumns, pcm: np.ndarray) -> np.ndarray:
    enc.reset()
    return np.stack([enc.process(pcm[b * BLOCK : (b + 1) * BLOCK]) for b in range(len(pcm) // BLOCK)])


def test_block_rows_are_the_newest_blocks_frames_in_pairs() -> None:
    cfg = VoiceEncoderConfig()
    rows = block_rows(BLOCK, cfg)  # the first block: the context is the block
    assert rows.shape == (8, 2) and rows[0].tolist() == [0, 1] and rows[-1].tolist() == [14, 15]
    full = block_rows(cfg.context_samples, cfg)  # 12 blocks of context: the last 16 of 192 frames
    assert cfg.context_samples == 12 * BLOCK and full[0, 0] == 176 and full[-1, -1] == 191


def test_columns_are_deterministic_and_see_only_the_last_context(encoder) -> None:
    rng = np.random.default_rng(0)
    tail = (0.05 * rng.standard_normal(12 * BLOCK)).astype(np.float32)
    a = np.concatenate([np.zeros(3 * BLOCK, np.float32), tail])
    b = np.concatenate([(0.3 * rng.standard_normal(3 * BLOCK)).astype(np.float32), tail])
    out_a, out_b = _run(encoder, a), _run(encoder, b)
    assert out_a.shape == (15, 8, encoder.dim) and out_a.dtype == np.float32 and encoder.dim == 384
    assert len(encoder.names) == 384 and encoder.names[0] == "wenc_000"
    assert np.array_equal(out_a, _run(encoder, a))  # the same stream twice: bit-identical
    # the last block's context (12 blocks) holds only `tail` in both streams: identical columns
    assert np.array_equal(out_a[-1], out_b[-1])
    # earlier blocks saw the different start: different columns
    assert not np.allclose(out_a[3], out_b[3])


@pytest.mark.skipif(not _grid_clips(), reason="../shared/media/grid is not here")
def test_speech_and_silence_read_differently(encoder) -> None:
    from edge.asr import load_audio_16k

    speech = load_audio_16k(_grid_clips()[0])[: 8 * BLOCK]
    voiced = _run(encoder, speech).reshape(-1, encoder.dim)
    quiet = _run(encoder, np.zeros(8 * BLOCK, np.float32)).reshape(-1, encoder.dim)
    assert np.all(np.isfinite(voiced))
    assert float(np.linalg.norm(voiced.mean(0) - quiet.mean(0))) > 0.2 * float(np.linalg.norm(quiet.mean(0)))
    assert float(voiced.std(axis=0).mean()) > 2 * float(quiet.std(axis=0).mean())


@pytest.mark.parametrize(
    ("kw", "match"),
    [({"context_s": 0.1}, "context_s"), ({"pad_s": -1.0}, "pad_s"), ({"sample_rate": 8000}, "16 kHz"),
     ({"frame_samples": 500}, "multiple"), ({"threads": 0}, "threads")],
)  # fmt: skip
def test_bad_config_is_refused(kw: dict, match: str) -> None:
    with pytest.raises(AudioInputError, match=match):
        VoiceEncoderConfig(**kw)


def test_bad_blocks_and_a_missing_model_are_refused(encoder, tmp_path) -> None:
    with pytest.raises(AudioInputError, match="one block of 5120 float32"):
        encoder.process(np.zeros(BLOCK, np.float64))
    with pytest.raises(AudioInputError, match="one block"):
        encoder.process(np.zeros(BLOCK - 1, np.float32))
    with pytest.raises(AudioInputError, match="build_engine"):
        VoiceEncoderColumns(model_dir=tmp_path)


def test_the_audio_extractor_carries_them_streaming_as_offline() -> None:
    """AudioFeatureConfig(voice_encoder=True): 22 + 384 columns, the 22 as without it, any push sizes."""
    from edge.features import AudioFeatureConfig, AudioFeatureExtractor
    from edge.features.spec import default_feature_spec

    rng = np.random.default_rng(1)
    t = np.arange(3 * 16000) / 16000
    pcm = (0.3 * np.sin(2 * np.pi * 180 * t) * (t > 0.5) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
    with_voice = AudioFeatureExtractor(AudioFeatureConfig(voice_encoder=True))
    offline = with_voice.extract(pcm)
    assert offline.values.shape == (75, 406) and offline.names[22] == "wenc_000"
    assert offline.names == default_feature_spec(voice_encoder=True).audio.columns
    plain = AudioFeatureExtractor().extract(pcm)
    np.testing.assert_array_equal(offline.values[:, :22], plain.values)
    with_voice.reset(0)
    at = 0
    for size in rng.integers(100, 9000, size=64):
        with_voice.push(pcm[at : at + size])
        at += int(size)
        if at >= len(pcm):
            break
    with_voice.finish()
    streamed = with_voice.pop()
    np.testing.assert_array_equal(streamed.values, offline.values)
    assert not default_feature_spec().voice_encoder and default_feature_spec(voice_encoder=True).voice_encoder


@pytest.mark.shared
def test_qamoe_live_runs_an_engine_that_reads_the_encoder_columns(tmp_path) -> None:
    """The runtime builds its audio extractor from the engine's feature spec: a model trained with the voice
    encoder's columns runs (and says so in every estimate), and so does one without (the shipped default)."""
    from edge.cli.liverun import LiveCommand, run_to_end
    from edge.features.spec import default_feature_spec
    from edge.manifest import load_manifest
    from edge.publish import validate
    from tests.support.live_fixtures import GRID, free_endpoint, make_live_engines

    clip = GRID / "id2_vcd_swwp2s.mpg"
    if not clip.exists():
        pytest.skip(f"{clip} not found: the GRID clips live in ../shared/media/grid")
    engines = make_live_engines(tmp_path, voice_encoder=True)
    spec = default_feature_spec(voice_encoder=True)
    assert load_manifest(engines / "manifest.json").sections["feature_spec"] == spec.to_dict()
    command = LiveCommand(("--video-file", str(clip), "--fast"), engines_dir=engines,
                          endpoint=free_endpoint())  # fmt: skip
    outcome = run_to_end(command, 120, record=True)
    assert outcome.exit_code == 0, outcome.stderr
    estimates = outcome.of("sentiment")
    assert estimates and "Traceback" not in outcome.stderr
    for topic, body in outcome.messages:
        validate(topic, body)
    assert {e["feature_spec_digest"] for e in estimates} == {spec.digest}
    assert any((e["modalities"]["audio"]["reliability"] or 0) > 0 for e in estimates)


def test_a_corpus_window_reads_what_streaming_gives_at_the_cost_of_its_blocks() -> None:
    """extract_clip runs Whisper's encoder on the window's blocks only (AudioFeatureExtractor.extract
    encode_from_ns): the window's values are bit-identical to encoding every block."""
    from qamoe.corpus.offline import Extractors, extract_clip

    rng = np.random.default_rng(2)
    t = np.arange(7 * 16000) / 16000
    voiced = (np.sin(2 * np.pi * 1.3 * t) > -0.2) * (t > 0.4)
    pcm = (0.3 * np.sin(2 * np.pi * 160 * t * (1 + 0.1 * np.sin(3 * t))) * voiced
           + 0.01 * rng.standard_normal(t.size)).astype(np.float32)  # fmt: skip
    extractors = Extractors.create(voice_encoder=True)
    clip = extract_clip(None, pcm, "well that was a surprise", spec=extractors.feature_spec(), extractors=extractors)
    start_ns = round(clip.stats.window_start_s * 1e9)
    assert start_ns > 2 * 10**9  # the window is the last 4 s of a 7 s clip: earlier blocks are skipped
    full = extractors.audio.extract(pcm, 0)
    inside = (full.t_ns >= start_ns) & (full.t_ns < round(clip.stats.window_end_s * 1e9))
    audio = clip.streams["audio"]
    assert audio.mask.all() and int(inside.sum()) == len(audio.values)
    np.testing.assert_array_equal(audio.values, full.values[inside])
    lazy = extractors.audio.extract(pcm, 0, encode_from_ns=start_ns)
    early = lazy.t_ns < start_ns - 320_000_000  # blocks wholly before the window: never encoded
    assert early.any() and not lazy.values[early, 22:].any() and full.values[early, 22:].any()
    np.testing.assert_array_equal(lazy.values[:, :22], full.values[:, :22])
