"""The feature spec: the contract between extractors, shards, checkpoints and engines."""

from __future__ import annotations

import dataclasses

import pytest

from edge.features.audio_config import VOICE_ENCODER_DIM
from edge.features.spec import (
    FEATURE_SPEC_VERSION,
    FeatureSpec,
    FeatureSpecError,
    StreamSpec,
    default_feature_spec,
    extractor_spec_for,
    extractor_specs,
)


def test_default_spec_geometry() -> None:
    spec = default_feature_spec()
    assert spec.window_s == 4.0 and spec.hop_s == 0.5
    assert spec.seq_lens == {"text": 48, "audio": 100, "vision": 40}
    assert spec.dims["audio"] == 22 and spec.dims["vision"] == 145 and spec.dims["text"] == 384 + 4


def test_round_trip_and_digest_is_stable() -> None:
    spec = default_feature_spec()
    again = FeatureSpec.from_dict(spec.to_dict())
    assert again == spec and again.digest == spec.digest
    assert default_feature_spec(hop_s=0.25).digest != spec.digest


def test_mismatch_names_what_differs_and_the_fix() -> None:
    spec = default_feature_spec()
    other = dataclasses.replace(spec, audio=dataclasses.replace(spec.audio, rate_hz=50.0, max_steps=200))
    with pytest.raises(FeatureSpecError, match=r"audio\.rate_hz/max_steps.*re-extract"):
        spec.check_matches(other)
    spec.check_matches(default_feature_spec())


def test_newer_version_and_malformed_specs_are_refused() -> None:
    d = default_feature_spec().to_dict()
    with pytest.raises(FeatureSpecError, match="upgrade"):
        FeatureSpec.from_dict(d | {"version": FEATURE_SPEC_VERSION + 1})
    with pytest.raises(FeatureSpecError, match="not a"):
        FeatureSpec.from_dict({k: v for k, v in d.items() if k != "format"})
    broken = dict(d)
    del broken["audio"]
    with pytest.raises(FeatureSpecError, match="malformed"):
        FeatureSpec.from_dict(broken)


@pytest.mark.parametrize(
    "kw",
    [
        {"name": "smell", "rate_hz": 1.0, "max_steps": 1, "columns": ("a",)},
        {"name": "audio", "rate_hz": 25.0, "max_steps": 0, "columns": ("a",)},
        {"name": "audio", "rate_hz": 25.0, "max_steps": 4, "columns": ("a", "a")},
    ],
)
def test_bad_streams(kw) -> None:
    with pytest.raises(FeatureSpecError):
        StreamSpec(**kw)


def test_window_must_hold_whole_frames() -> None:
    with pytest.raises(FeatureSpecError, match="whole number"):
        default_feature_spec(window_s=4.01)


def test_the_extractors_make_two_specs_and_a_digest_names_one() -> None:
    plain, voice = extractor_specs()
    assert plain == default_feature_spec() and not plain.voice_encoder
    assert voice.voice_encoder and voice.audio.dim == plain.audio.dim + VOICE_ENCODER_DIM
    assert voice.audio.columns[: plain.audio.dim] == plain.audio.columns  # the 22 live columns come first
    assert extractor_spec_for(voice.digest) == voice and extractor_spec_for(plain.digest) == plain
    assert extractor_spec_for("0" * 64) is None
    assert extractor_spec_for(plain.digest, window_s=2.0) is None  # another window is another spec
