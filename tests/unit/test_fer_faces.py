"""FER2013 photos as labelled faces (qamoe.corpus.fer): the valence map, the label-free split and placement,
and the reader's checks, on a small npz written here (no shared data needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qamoe.corpus.fer import (
    CLASSES,
    FER_FILE,
    WebcamPlacement,
    place,
    read_fer,
    split_of,
    valence_of_expression,
)
from qamoe.errors import ConfigError, DataError


def _write(root: Path, names: list[str], labels: list[int], images: np.ndarray | None = None) -> Path:
    path = root / FER_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    imgs = images if images is not None else rng.integers(0, 256, (len(names), 48, 48), dtype=np.uint8)
    np.savez(path, images=imgs, labels=np.array(labels, np.int16), classes=np.array(CLASSES),
             names=np.array(names))
    return root


def test_the_valence_map_matches_the_voices_and_leaves_surprise_out() -> None:
    assert valence_of_expression("happy") == 2.0 and valence_of_expression("neutral") == 0.0
    assert valence_of_expression("fear") == -1.5
    assert valence_of_expression("angry") == valence_of_expression("sad") == valence_of_expression("disgust") == -2
    assert valence_of_expression("surprise") is None
    with pytest.raises(ConfigError, match="not one of"):
        valence_of_expression("contempt")


def test_the_split_is_a_hash_of_the_name_in_the_ratio_8_1_1() -> None:
    names = [f"Training_{i}.jpg" for i in range(20000)]
    splits = [split_of(n) for n in names]
    share = {s: splits.count(s) / len(names) for s in ("train", "valid", "test")}
    assert share["train"] == pytest.approx(0.8, abs=0.01) and share["test"] == pytest.approx(0.1, abs=0.01)
    assert [split_of(n) for n in names[:50]] == splits[:50]  # stable


def test_read_fer_keeps_every_usable_photo_with_its_label_and_a_unique_key(tmp_path: Path) -> None:
    names = ["a.jpg", "b.jpg", "c.jpg", "a.jpg"]  # FER2013 holds two names twice, on different photos
    root = _write(tmp_path, names, [3, 6, 5, 0])  # happy, surprise (left out), sad, angry
    data = read_fer(root)
    assert [f.expression for f in data.faces] == ["happy", "sad", "angry"]
    assert [f.label for f in data.faces] == [2.0, -2.0, -2.0]
    keys = [f.key for f in data.faces]
    assert len(set(keys)) == 3 and keys[1] == "fer2013/c" and keys[0].startswith("fer2013/a~")
    assert data.faces[0].split == data.faces[2].split == split_of("a.jpg")


@pytest.mark.parametrize("bad", ["classes", "shape", "labels", "missing"])
def test_a_malformed_file_is_a_data_error(tmp_path: Path, bad: str) -> None:
    root = tmp_path
    if bad != "missing":
        _write(root, ["a.jpg"], [3])
        z = dict(np.load(root / FER_FILE))
        if bad == "classes":
            z["classes"] = z["classes"][::-1]
        elif bad == "shape":
            z["images"] = np.zeros((1, 40, 40), np.uint8)
        else:
            z["labels"] = np.array([9], np.int16)
        np.savez(root / FER_FILE, **z)
    with pytest.raises(DataError):
        read_fer(root)


def test_placement_is_a_function_of_photo_and_name_only() -> None:
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 256, (48, 48), dtype=np.uint8)
    a, b = place(photo, "Training_1"), place(photo, "Training_1")
    assert a.shape == (480, 640, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert (a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all()  # grey in three channels
    assert not np.array_equal(a, place(photo, "Training_2"))  # another name: another position, size, noise
    quiet = place(photo, "Training_1", WebcamPlacement(noise_sd=0.0, sharpen=0.0))
    rows = np.flatnonzero((np.abs(quiet[..., 0].astype(int) - np.rint(np.linspace(90, 150, 480))[:, None])
                           > 0).any(axis=1))
    assert 128 <= rows.size <= 152  # the photo's rows: its side lies in side_px


def test_a_placement_that_leaves_the_frame_is_refused() -> None:
    with pytest.raises(ConfigError, match="fit"):
        WebcamPlacement(side_px=(128, 600))
    with pytest.raises(ConfigError, match="inside the frame"):
        WebcamPlacement(centre=(50, 220))


def test_each_frame_of_a_video_of_the_photo_has_fresh_noise_on_the_same_placement() -> None:
    photo = np.random.default_rng(2).integers(0, 256, (48, 48), dtype=np.uint8)
    a, b = place(photo, "Training_3", frame=0), place(photo, "Training_3", frame=1)
    assert not np.array_equal(a, b)  # a camera that repeats a frame exactly is frozen to qamoe-live
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 3  # the same picture, only the noise differs
    np.testing.assert_array_equal(a, place(photo, "Training_3"))  # frame 0 is the training corpus's


def test_the_balanced_training_view_keeps_every_non_negative_row_and_zeroes_the_mean() -> None:
    from qamoe.corpus.balance import select_balanced

    labels = np.array([2.0] * 30 + [0.0] * 20 + [-2.0] * 40 + [-1.5] * 10)
    ids = np.array([f"fer2013/Training_{i}" for i in range(labels.size)])
    keep = select_balanced(ids, labels)
    assert keep[labels >= 0].all()
    assert abs(labels[keep].mean()) <= 2.0 / keep.sum()  # as near 0 as one more row could bring it
    assert 25 <= (keep & (labels < 0)).sum() <= 35
    np.testing.assert_array_equal(keep, select_balanced(ids[::-1], labels[::-1])[::-1])  # by id, not row order
    assert select_balanced(ids, -labels).all()  # a mean already above the target: every row kept
