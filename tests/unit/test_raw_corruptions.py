"""Raw-media corruptions (`qamoe.corpus.raw_corruptions`), the corpus's "#raw" twins (`qamoe.corpus.plan`),
the training side that pairs a twin with its clean row (`qamoe.training.twin_reference`) and the evaluation that
shuffles reliabilities (`qamoe.corpus_eval`)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from edge.features.visual import VISION_COLUMNS
from qamoe.corpus.facebank import FaceBank, FaceBankConfig, FaceSequence, WindowIndex
from qamoe.corpus.plan import CorpusConfig, CorpusRow, plan_sample, with_raw_twins
from qamoe.corpus.raw_corruptions import (
    DROPOUT_BLOCK_S,
    LEVELS,
    RAW_KINDS,
    VIDEO_KINDS,
    RawCorruption,
    RawCorruptionError,
    add_noise,
    corrupt_audio,
    corrupt_frame,
    drop_blocks,
    drop_steps,
)


def _speech(seconds: float = 2.0) -> np.ndarray:
    t = np.arange(int(16000 * seconds)) / 16000
    return (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2).astype(np.float32)


@pytest.mark.parametrize("snr", [30.0, 10.0, 0.0, -5.0])
def test_noise_is_added_at_the_stated_snr(snr: float) -> None:
    x = _speech()
    y = add_noise(x, snr, np.random.default_rng(0))
    measured = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean((y - x).astype(np.float64) ** 2))
    assert abs(measured - snr) < 0.5 or snr < 0  # at -5 dB clipping to [-1, 1] eats a little of the noise
    assert y.dtype == np.float32 and np.abs(y).max() <= 1.0


def test_dropout_zeroes_the_stated_share_of_blocks() -> None:
    x = _speech(20.0) + 0.01
    y = drop_blocks(x, 0.45, np.random.default_rng(1))
    block = int(DROPOUT_BLOCK_S * 16000)
    zeroed = np.mean([not y[i:i + block].any() for i in range(0, y.size, block)])
    assert abs(zeroed - 0.45) < 0.08
    kept = y != 0
    np.testing.assert_array_equal(y[kept], x[kept])


def test_corruptions_are_deterministic_and_severity_zero_is_clean() -> None:
    x = _speech()
    for kind in ("audio_noise", "audio_dropout", "asr_noise"):
        c = RawCorruption(kind, 0.6)
        np.testing.assert_array_equal(corrupt_audio(x, c, np.random.default_rng(3)),
                                      corrupt_audio(x, c, np.random.default_rng(3)))
    np.testing.assert_array_equal(corrupt_audio(x, RawCorruption("audio_dropout", 0.0), np.random.default_rng(0)), x)
    frame = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    for kind in VIDEO_KINDS:
        np.testing.assert_array_equal(corrupt_frame(frame, RawCorruption(kind, 0.0)), frame)


def test_frame_corruptions_do_what_they_say() -> None:
    frame = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    dark = corrupt_frame(frame, RawCorruption("video_dark", 1.0))
    assert dark.mean() == pytest.approx(frame.mean() * 0.05, rel=0.05)
    occluded = corrupt_frame(frame, RawCorruption("video_occlusion", 1.0))
    black = (occluded == 0).all(axis=2).mean()
    assert abs(black - 0.6) < 0.03 and (occluded[60, 80] == 0).all()  # the centre is covered
    blurred = corrupt_frame(frame, RawCorruption("video_blur", 1.0))
    assert blurred.std() < 0.5 * frame.std()  # noise texture is smoothed away


def test_frame_drop_masks_steps_at_its_rate() -> None:
    mask = np.ones(20000, bool)
    dropped = drop_steps(mask, RawCorruption("video_frame_drop", 0.5), np.random.default_rng(0))
    assert abs(1 - dropped.mean() - 0.45) < 0.02
    np.testing.assert_array_equal(drop_steps(mask, RawCorruption("video_blur", 1.0), np.random.default_rng(0)), mask)


def test_bad_corruptions_are_refused() -> None:
    with pytest.raises(RawCorruptionError, match="unknown raw corruption"):
        RawCorruption("rain", 0.5)
    with pytest.raises(RawCorruptionError, match=r"\[0, 1\]"):
        RawCorruption("audio_noise", 1.5)


# ------------------------------------------------------------------------------------------------ corpus twins
def _bank(steps: int = 15) -> FaceBank:
    rng = np.random.default_rng(0)
    seqs = tuple(FaceSequence(f"seq{i}", rng.standard_normal((steps, len(VISION_COLUMNS))).astype(np.float32),
                              np.ones(steps, bool)) for i in range(3))
    return FaceBank(seqs, "test")


def _corrupted_banks(bank: FaceBank) -> dict[tuple[str, float], FaceBank]:
    """Stand-ins for the re-extracted banks: the same shapes, values offset by (kind, level)."""
    out = {}
    for k, kind in enumerate(VIDEO_KINDS):
        for level in LEVELS:
            out[(kind, level)] = FaceBank(tuple(replace(s, values=s.values + 10 * k + level)
                                                for s in bank.sequences), "test")
    return out


def test_raw_twins_are_a_seeded_share_and_differ_only_by_their_corruption() -> None:
    rows = [CorpusRow(f"mosi/r{i}", f"mosi/r{i}", "some words", 1.0, "train") for i in range(400)]
    rows += [CorpusRow(f"mosi/t{i}", f"mosi/t{i}", "other words", -1.0, "test") for i in range(50)]
    config = CorpusConfig(raw_train_fraction=0.3, raw_test=True, asr_fraction=0.0)
    out = with_raw_twins(rows, config)
    assert out == with_raw_twins(rows, config)
    twins = [r for r in out if r.key.endswith("#raw")]
    train_twins = [r for r in twins if r.split == "train_raw"]
    assert abs(len(train_twins) / 400 - 0.3) < 0.07
    assert sum(r.split == "test_raw" for r in twins) == 50
    bank = _bank()
    index, banks = WindowIndex(bank, FaceBankConfig(steps=10)), _corrupted_banks(bank)
    kinds = set()
    for twin in twins:
        clean = next(r for r in rows if r.key == twin.base)
        a, b = plan_sample(clean, config, index, banks), plan_sample(twin, config, index, banks)
        assert a.raw is None and b.raw is not None and b.raw.severity in LEVELS
        kinds.add(b.raw.kind)
        assert a.voice == b.voice and a.record.get("end_step") == b.record.get("end_step")
        assert b.use_asr == (b.raw.kind == "asr_noise")
        if b.raw.kind in VIDEO_KINDS and a.vision[1].any():
            offset = 10 * VIDEO_KINDS.index(b.raw.kind) + b.raw.severity
            np.testing.assert_allclose(b.vision[0][a.vision[1]], a.vision[0][a.vision[1]] + offset, rtol=1e-5)
        elif b.raw.kind == "video_frame_drop":
            assert not (b.vision[1] & ~a.vision[1]).any()
        else:
            np.testing.assert_array_equal(a.vision[0], b.vision[0])
    assert kinds == set(RAW_KINDS)


def test_twin_reference_points_raw_twins_at_their_clean_rows() -> None:
    pytest.importorskip("torch")
    from qamoe.data.featureset import FeatureSet
    from qamoe.modality import MODALITIES
    from qamoe.training import twin_reference

    ids = np.array(["a", "b", "b#raw", "c#raw", "a#raw"])
    fs = FeatureSet({m: np.zeros((5, 2, 3), np.float32) for m in MODALITIES},
                    {m: np.ones((5, 2), bool) for m in MODALITIES}, np.zeros(5, np.float32), ids)
    assert twin_reference(fs).tolist() == [0, 1, 1, 3, 0]  # c's clean row is absent: its own target


def test_shuffling_with_the_identity_reproduces_the_model() -> None:
    torch = pytest.importorskip("torch")
    from qamoe.config import ModelConfig
    from qamoe.corpus_eval import predict_shuffled
    from qamoe.data.synthetic import SyntheticConfig, make_benchmark
    from qamoe.evaluation import predict
    from qamoe.models import create_model

    test = make_benchmark(SyntheticConfig(seed=0))["test"].subset(slice(0, 64))
    torch.manual_seed(0)
    model = create_model("qamoe", ModelConfig(input_dims=test.dims, d_model=16, expert_hidden=24))
    own = predict(model, test).valence
    np.testing.assert_allclose(predict_shuffled(model, test, perm=np.arange(len(test))), own, atol=1e-5)
    assert not np.allclose(predict_shuffled(model, test, seed=1), own, atol=1e-4)


def test_raw_fidelity_counts_twins_whose_input_did_not_change() -> None:
    torch = pytest.importorskip("torch")
    from qamoe.config import ModelConfig
    from qamoe.corpus_eval import RAW_SUFFIX, raw_fidelity_rows, same_input
    from qamoe.data.featureset import FeatureSet
    from qamoe.data.synthetic import SyntheticConfig, make_benchmark
    from qamoe.fidelity import absent_last_ceiling
    from qamoe.models import create_model

    base = make_benchmark(SyntheticConfig(seed=0))["test"].subset(slice(0, 40))
    feats = {m: base.feats[m].copy() for m in base.feats}
    masks = {m: base.masks[m].copy() for m in base.masks}
    feats["vision"][:8] = 0.0  # eight clips without a face: vision absent, clean and corrupted alike
    masks["vision"][:8] = False
    test = FeatureSet(feats, masks, base.labels, base.ids)
    raw_feats = {m: v.copy() for m, v in feats.items()}
    noise = np.random.default_rng(0).normal(0, 1, raw_feats["vision"][8:].shape).astype(np.float32)
    raw_feats["vision"][8:] += noise
    raw_feats["vision"][8:] *= masks["vision"][8:, :, None]
    raw = FeatureSet(raw_feats, {m: v.copy() for m, v in masks.items()}, base.labels,
                     np.array([f"{k}{RAW_SUFFIX}" for k in base.ids]))
    severity = np.random.default_rng(1).choice([0.2, 0.6, 1.0], 40)
    raw_of = {f"{k}{RAW_SUFFIX}": {"kind": "video_blur", "severity": float(s)}
              for k, s in zip(base.ids, severity)}
    assert same_input(test, 0, raw, 0, "vision") and not same_input(test, 8, raw, 8, "vision")
    assert same_input(test, 8, raw, 8, "text")

    torch.manual_seed(0)
    model = create_model("qamoe", ModelConfig(input_dims=test.dims, d_model=16, expert_hidden=24))
    (row,) = raw_fidelity_rows(model, test, raw, raw_of)
    assert row["kind"] == "video_blur" and row["n_twins"] == 40
    assert row["n_observed_vision"] == 32 and row["n_unchanged_vision"] == 8
    assert row["n_unchanged_text"] == 40 and row["n_unchanged_audio"] == 40
    sev = np.concatenate([np.zeros(40), severity])
    seen = np.tile(np.arange(40) >= 8, 2)
    assert row["rho_vision_ceiling"] == pytest.approx(absent_last_ceiling(sev, seen))
    assert row["rho_vision_ceiling"] > -0.8  # 8 faceless twins of 40: not even a perfect score reaches -0.8
