"""Real emotional speech through the live path into shards (tools/build_affect_corpus.py, qamoe.corpus.affect_build):
the shared corpora read complete and split by speaker, a few clips made end to end, and no input depends on the
label."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from qamoe.corpus.affect import read_clips, speakers_by_split
from qamoe.corpus.affect_build import MicContext, build
from qamoe.data.gather import read_shards

pytestmark = pytest.mark.shared


def test_the_shared_corpora_read_complete_and_split_by_speaker(shared_dir: Path) -> None:
    clips = read_clips(shared_dir / "data" / "affect")
    by_dataset = {d: [c for c in clips if c.dataset == d] for d in ("ravdess", "emodb", "speech_va")}
    assert len(by_dataset["ravdess"]) == 1440 - 192  # surprise (2 intensities x 2 statements x 2 reps x 24)
    assert len(by_dataset["emodb"]) == 535 and len(by_dataset["speech_va"]) == 47
    splits = speakers_by_split(clips)
    for a in ("train", "valid", "test"):
        for b in ("train", "valid", "test"):
            if a < b:
                assert not splits[a] & splits[b], (a, b, splits[a] & splits[b])
    assert {"ravdess/21", "ravdess/24", "emodb/15", "emodb/16"} <= splits["test"]


def _pick(clips: list) -> list:
    """A happy and an angry clip of each split (RAVDESS and EmoDB alternately)."""
    out = []
    for i, split in enumerate(("train", "valid", "test")):
        dataset = ("ravdess", "emodb")[i % 2]
        for emotion in ("happy", "angry"):
            out.append(next(c for c in clips if (c.split, c.dataset, c.emotion) == (split, dataset, emotion)))
    return out


def _build(clips: list, out: Path) -> dict:
    return build(clips, out, workers=1, limit=None, options={"test": 1}, shard_size=100, checkpoint_every=10,
                 created_by="tests")


def test_clips_are_made_through_the_live_path_and_are_label_independent(shared_dir: Path,
                                                                             tmp_path: Path) -> None:
    clips = _pick(read_clips(shared_dir / "data" / "affect", ["ravdess", "emodb"]))
    assert _build(clips, tmp_path / "a")["made"] == len(clips) == 6
    labels = [c.label for c in clips]
    permuted = [dataclasses.replace(c, label=lab) for c, lab in zip(clips, labels[::-1], strict=True)]
    assert [c.label for c in permuted] != labels
    _build(permuted, tmp_path / "b")
    for split in ("train", "valid", "test"):
        a, _ = read_shards(tmp_path / "a", split=split)
        b, _ = read_shards(tmp_path / "b", split=split)
        assert a.ids.tolist() == b.ids.tolist() and len(a) == 2
        for m in a.feats:  # bit-identical inputs whatever the labels
            np.testing.assert_array_equal(a.feats[m], b.feats[m])
            np.testing.assert_array_equal(a.masks[m], b.masks[m])
        want = {c.key: c.label for c in clips}
        assert a.labels.tolist() == pytest.approx([want[i] for i in a.ids.tolist()])
        assert not a.masks[next(m for m in a.masks if m.value == "vision")].any()  # audio-only clips
        assert a.masks[next(m for m in a.masks if m.value == "audio")].any(axis=1).all()
    prov = [json.loads(line) for line in (tmp_path / "a" / "provenance.jsonl").read_text().splitlines()]
    ravdess = [p for p in prov if p["dataset"] == "ravdess"]
    assert {p["emotion"] for p in prov} == {"happy", "angry"}
    assert ravdess and all("door" in p["transcript"].lower() for p in ravdess), ravdess  # the live ASR heard it
    assert _build(clips, tmp_path / "a")["made"] == 0  # resumed: nothing made twice


def test_voice_encoder_columns_reach_the_shards(shared_dir: Path, tmp_path: Path) -> None:
    """--voice-encoder: the audio stream gains Whisper's 384 encoder columns; the 22 live columns and the other
    streams are the same as without it."""
    from edge.features.spec import default_feature_spec

    clips = _pick(read_clips(shared_dir / "data" / "affect", ["ravdess", "emodb"]))[:2]
    plain = tmp_path / "plain"
    build(clips, plain, workers=1, limit=None, options={"test": 1}, shard_size=100, checkpoint_every=10,
          created_by="tests")  # fmt: skip
    voiced = tmp_path / "voice"
    spec = default_feature_spec(voice_encoder=True)
    build(clips, voiced, workers=1, limit=None, options={"test": 1}, shard_size=100, checkpoint_every=10,
          created_by="tests", spec=spec)  # fmt: skip
    for split in ("train",):  # the two clips are training clips
        a, _ = read_shards(plain, split=split)
        b, _ = read_shards(voiced, split=split)
        assert len(a) == len(b) == 2
        audio = next(m for m in a.feats if m.value == "audio")
        assert a.feats[audio].shape[-1] == 22 and b.feats[audio].shape[-1] == 406
        np.testing.assert_array_equal(a.feats[audio], b.feats[audio][..., :22])
        np.testing.assert_array_equal(a.masks[audio], b.masks[audio])
        enc = b.feats[audio][..., 22:]
        assert np.all(enc[~b.masks[audio]] == 0) and np.abs(enc[b.masks[audio]]).mean() > 0.01
        for m in a.feats:
            if m != audio:
                np.testing.assert_array_equal(a.feats[m], b.feats[m])


def test_lead_in_fills_the_window_as_an_open_microphone_does(shared_dir: Path, tmp_path: Path) -> None:
    """--lead-in: silence before each clip, so a clip shorter than the window has no masked audio slot (as live,
    where the microphone was open before the speech); times stay in the clip's own time; the words are the
    same."""
    clips = _pick(read_clips(shared_dir / "data" / "affect", ["ravdess", "emodb"]))[:2]  # RAVDESS train clips
    mics = {"cold": MicContext(), "lead": MicContext(lead_in_s=4.5),
            "noisy": MicContext(lead_in_s=4.5, noise_floor_dbfs=(-60.0, -60.0))}  # fmt: skip
    for name, mic in mics.items():
        build(clips, tmp_path / name, workers=1, limit=None, options={"test": 1}, shard_size=100,
              checkpoint_every=10, created_by="tests", mic=mic)  # fmt: skip
    cold, _ = read_shards(tmp_path / "cold", split="train")
    lead, _ = read_shards(tmp_path / "lead", split="train")
    audio = next(m for m in cold.masks if m.value == "audio")
    assert not cold.masks[audio].all(axis=1).any()  # RAVDESS clips (~3.5 s) are shorter than the 4 s window
    assert lead.masks[audio].all()
    assert np.abs(lead.feats[audio][:, :5]).sum() > 0  # the silence's slots carry features, not zeros
    noisy, _ = read_shards(tmp_path / "noisy", split="train")
    assert noisy.masks[audio].all() and not np.array_equal(noisy.feats[audio], lead.feats[audio])
    prov = {name: [json.loads(x) for x in (tmp_path / name / "provenance.jsonl").read_text().splitlines()]
            for name in mics}  # fmt: skip
    assert all(p["noise_floor_dbfs"] == -60.0 for p in prov["noisy"]) and "noise_floor_dbfs" not in prov["lead"][0]
    extract = json.loads((tmp_path / "noisy" / "extract.json").read_text())["options"]
    assert extract["lead_in_s"] == 4.5 and extract["noise_floor_dbfs"] == [-60.0, -60.0]
    for a, b in zip(prov["cold"], prov["lead"], strict=True):
        assert a["id"] == b["id"] and a["transcript"] == b["transcript"]
        assert a["duration_s"] == pytest.approx(b["duration_s"], abs=0.05)
        assert a["window_end_s"] == pytest.approx(b["window_end_s"], abs=0.25)
