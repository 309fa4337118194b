"""FER2013 photos through the live camera path into shards (tools/build_fer_corpus.py, qamoe.corpus.fer_build):
the shared set reads complete, a still window equals the live extractor run at every tick, a few photos are
made end to end, and no input depends on the label."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.features.spec import default_feature_spec
from qamoe.corpus.fer import place, read_fer
from qamoe.corpus.fer_build import build
from qamoe.corpus.offline import Extractors, extract_still
from qamoe.data.gather import read_shards

pytestmark = pytest.mark.shared
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fer(shared_dir: Path):  # type: ignore[no-untyped-def]
    return read_fer(shared_dir / "data" / "affect")


def test_the_shared_set_reads_complete_with_a_label_free_split(fer) -> None:  # type: ignore[no-untyped-def]
    assert len(fer.images) == 28709
    assert len(fer.faces) == 28709 - 3171  # surprise left out
    assert len({f.key for f in fer.faces}) == len(fer.faces)
    by_split = {s: [f for f in fer.faces if f.split == s] for s in ("train", "valid", "test")}
    assert 0.09 < len(by_split["test"]) / len(fer.faces) < 0.11
    for split, faces in by_split.items():  # the hash split keeps every class in every split near its share
        happy = sum(f.expression == "happy" for f in faces) / len(faces)
        assert 0.25 < happy < 0.31, (split, happy)


def test_a_still_window_is_the_live_extractor_at_every_tick(fer) -> None:  # type: ignore[no-untyped-def]
    ex = Extractors.create()
    spec = default_feature_spec()
    seen = set()
    for face in [f for f in fer.faces if f.expression == "happy"][:40]:
        frame = place(fer.images[face.index], face.key.split("/", 1)[1])
        clip = extract_still(frame, spec=spec, extractors=ex)
        vision = clip.streams["vision"]
        assert vision.values.shape == (40, len(spec.stream("vision").columns))
        for tick in (0, 17, 39):  # the extractor keeps no state between frames: any tick gives the same row
            vf = ex.visual.process(frame, tick * 100_000_000)
            assert vision.mask[tick] == vf.present
            # the window assembler zeroes a masked step (no face), quality columns included, as live
            np.testing.assert_array_equal(vision.values[tick], vf.values if vf.present else 0 * vf.values)
        assert not clip.streams["audio"].mask.any() and not clip.streams["text"].mask.any()
        seen.add(bool(vision.mask.all()))
        if seen == {True, False}:
            break
    assert seen == {True, False}  # both a photo where BlazeFace finds the face and one where it does not


def test_photos_are_made_through_the_live_path_and_are_label_independent(fer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    faces = [next(f for f in fer.faces if (f.split, f.expression) == (s, e))
             for s in ("train", "valid", "test") for e in ("happy", "sad", "neutral")]  # fmt: skip

    def run(chosen: list, out: Path) -> dict:
        return build(fer, chosen, out, workers=1, limit=None, options={"test": 1}, shard_size=100,
                     checkpoint_every=10, created_by="tests")  # fmt: skip

    assert run(faces, tmp_path / "a")["made"] == 9
    labels = [f.label for f in faces]
    permuted = [dataclasses.replace(f, label=lab) for f, lab in zip(faces, labels[1:] + labels[:1], strict=True)]
    assert [f.label for f in permuted] != labels
    run(permuted, tmp_path / "b")
    prov = [json.loads(line) for line in (tmp_path / "a" / "provenance.jsonl").read_text().splitlines()]
    for split in {p["split"] for p in prov}:  # train, valid, test and the `_noface` splits of photos without one
        a, _ = read_shards(tmp_path / "a", split=split)
        b, _ = read_shards(tmp_path / "b", split=split)
        assert a.ids.tolist() == b.ids.tolist() and len(a) == sum(p["split"] == split for p in prov)
        assert a.masks[next(m for m in a.masks if m.value == "vision")].any(axis=1).all() == (
            not split.endswith("_noface"))
        for m in a.feats:  # label_independent: bit-identical inputs whatever the labels
            np.testing.assert_array_equal(a.feats[m], b.feats[m])
            np.testing.assert_array_equal(a.masks[m], b.masks[m])
        want = {f.key: f.label for f in faces}
        assert a.labels.tolist() == pytest.approx([want[i] for i in a.ids.tolist()])
    assert len(prov) == 9 and {p["expression"] for p in prov} == {"happy", "sad", "neutral"}
    assert run(faces, tmp_path / "a")["made"] == 0  # resumed: nothing made twice


def test_the_tool_reports_missing_data_with_exit_3(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, str(REPO / "tools" / "build_fer_corpus.py"), "--affect", str(tmp_path),
                        "--out", str(tmp_path / "out")], check=False, capture_output=True, text=True,
                       timeout=120)  # fmt: skip
    assert r.returncode == 3, r.stderr
    assert "Traceback" not in r.stderr and "fer2013_train.npz" in r.stderr


@pytest.mark.parametrize(("args", "code", "words"), [
    (["--hold", "3"], 2, "--hold"),  # shorter than a window
    (["--hold", "4.2"], 2, "multiple of the hop"),
    (["--grid", "/nonexistent", "--limit", "1"], 3, "GRID"),
])  # fmt: skip
def test_the_live_face_evaluation_refuses_bad_options_in_one_line(shared_dir: Path, args: list[str], code: int,
                                                                 words: str) -> None:
    r = subprocess.run([sys.executable, str(REPO / "tools" / "evaluate_faces_live.py"), "--affect",
                        str(shared_dir / "data" / "affect"), "--engines", str(REPO / "engines"), *args],
                       check=False, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == code, r.stderr
    assert "Traceback" not in r.stderr and words in r.stderr
