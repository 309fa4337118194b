"""FER2013's training photos as labelled faces, and how each is shown to the live camera path.

Reads `<affect>/fer2013/fer2013_train.npz` (`../shared/data/affect/README.md`: `images` uint8 [N, 48, 48] grey
face crops, `labels` into `classes`, `names` the original file names). Nothing here runs a model:
`qamoe.corpus.fer_build` takes the placed frames through the live visual extractor.

The expression -> valence map is the voice's (`qamoe.corpus.affect.VALENCE`, docs/CORPUS.md), in FER2013's
class names: happy +2, neutral 0, fear -1.5, angry, sad, disgust -2; surprise is left out (its valence depends
on its cause, which a photo does not show).

Splits. FER2013 has no identities, so the photos are split by a hash of the file name, never by label:
sha256(name) mod 10 = 0..7 train, 8 valid, 9 test (`split_of`). A person photographed twice may sit on both
sides (FER2013 holds near-duplicates); that is the best a set without identities allows, and docs/CORPUS.md
says so.

Placement (`WebcamPlacement`, `place`): a webcam frame, 640 x 480, grey replicated to three channels (the
photos are grey), background a vertical gradient from 90 to 150 (a wall lit from above), the photo upscaled
(bicubic) to a square of side `side_px` in [128, 152] (the face of a person about 80 cm from a 60-degree
webcam spans a fifth of a 640-pixel frame) with its centre at (320 + dx, 220 + dy), dx, dy in +-40 / +-30
pixels, plus Gaussian sensor noise of sd `noise_sd` (2 grey levels), drawn afresh for every frame of a video
of the photo (the training window holds frame 0 still: `qamoe.corpus.offline.extract_still`). Every choice
comes from generators seeded by sha256 of the photo's name (and the frame's index): the same photo is always
placed the same way, and the label never enters.

Sharpening. This copy of FER2013 is blurred well beyond its 48 pixels: the median variance of the Laplacian
of a photo is 6 (a 48-pixel crop of a GRID face: about 600), and downsampling to 20 pixels and back changes
a photo by about 2 grey levels rms, i.e. its effective resolution is about 20 pixels. BlazeFace finds the
face in 58% of such photos placed as above (300 photos), in 74-79% after an unsharp mask of the upscaled photo
(`sharpen` = 2.5: face + 2.5 (face - Gaussian(face, sd = 1.5 photo pixels))); the FER CNN's accuracy on the
faces found is the same (0.20-0.22) either way. A webcam's face is sharp, so the mask brings the photo nearer
to what the live detector meets; it is applied to every photo alike (docs/CORPUS.md, "Real faces").
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from qamoe.corpus.affect import VALENCE
from qamoe.errors import ConfigError, DataError

FER_FILE = Path("fer2013") / "fer2013_train.npz"
CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
# FER2013 class -> the emotion of the shared valence map (None: left out)
EMOTION_OF = {"angry": "angry", "disgust": "disgust", "fear": "fearful", "happy": "happy", "neutral": "neutral",
              "sad": "sad", "surprise": None}  # fmt: skip
POSITIVE = ("happy",)  # the AUC: happy vs angry, sad, fearful, disgusted
NEGATIVE = ("angry", "sad", "fear", "disgust")
SPLIT_BUCKETS = {**{b: "train" for b in range(8)}, 8: "valid", 9: "test"}


@dataclass(frozen=True)
class FerFace:
    key: str  # `face_key`: "fer2013/<name without .jpg>"
    index: int  # row of the npz arrays
    expression: str  # FER2013's class name
    label: float  # the valence target on [-3, 3]
    split: str  # train | valid | test


@dataclass(frozen=True)
class FerData:
    """The photos (uint8 [N, 48, 48]) and the usable faces among them (surprise left out)."""

    images: np.ndarray
    faces: list[FerFace]


def name_digest(name: str) -> bytes:
    return hashlib.sha256(name.encode("utf-8")).digest()


def split_of(name: str) -> str:
    """train / valid / test from the file name's hash (8 : 1 : 1), never from the label."""
    return SPLIT_BUCKETS[int.from_bytes(name_digest(name)[:8], "big") % 10]


def valence_of_expression(expression: str) -> float | None:
    """The valence target of a FER2013 class, None for surprise (left out); ConfigError for an unknown class."""
    if expression not in EMOTION_OF:
        raise ConfigError(f"FER2013 class {expression!r} is not one of {', '.join(CLASSES)}")
    emotion = EMOTION_OF[expression]
    return None if emotion is None else VALENCE[emotion]


def read_fer(affect: Path) -> FerData:
    """Every usable photo of `affect`/fer2013, in file order; DataError when the file is missing or malformed."""
    path = affect / FER_FILE
    try:
        with np.load(path, allow_pickle=False) as z:
            images, labels = z["images"], z["labels"]
            classes, names = [str(c) for c in z["classes"]], [str(n) for n in z["names"]]
    except (OSError, KeyError, ValueError) as e:
        raise DataError(f"cannot read {path} ({e}): pass --affect, the folder of ../shared/data/affect") from None
    if tuple(classes) != CLASSES:
        raise DataError(f"{path}: classes {classes} differ from FER2013's {list(CLASSES)}")
    if images.ndim != 3 or images.shape[1:] != (48, 48) or images.dtype != np.uint8:
        raise DataError(f"{path}: images must be uint8 [N, 48, 48], got {images.dtype} {list(images.shape)}")
    if not len(images) == len(labels) == len(names):
        raise DataError(f"{path}: images, labels and names must have one row per photo")
    if labels.size and not 0 <= int(labels.min()) <= int(labels.max()) < len(CLASSES):
        raise DataError(f"{path}: labels must index the {len(CLASSES)} classes")
    counts = Counter(names)
    faces = []
    for i, (name, lab) in enumerate(zip(names, labels.tolist(), strict=True)):
        expression = CLASSES[lab]
        label = valence_of_expression(expression)
        if label is not None:
            faces.append(FerFace(face_key(name, images[i], unique=counts[name] == 1), i, expression, label,
                                 split_of(name)))  # fmt: skip
    return FerData(images, faces)


def face_key(name: str, photo: np.ndarray, *, unique: bool) -> str:
    """"fer2013/<file name stem>"; a name the set holds twice (two different photos: FER2013 has two) gets
    "~" and the first 8 hex digits of sha256 of the photo's pixels: from the content, not from the label or
    the file order (which is grouped by class)."""
    stem = Path(name).stem
    return f"fer2013/{stem}" if unique else f"fer2013/{stem}~{hashlib.sha256(photo.tobytes()).hexdigest()[:8]}"


@dataclass(frozen=True)
class WebcamPlacement:
    """Where and how a 48 x 48 photo sits in a webcam frame (see the module docstring)."""

    width: int = 640
    height: int = 480
    side_px: tuple[int, int] = (128, 152)
    centre: tuple[int, int] = (320, 220)
    jitter_px: tuple[int, int] = (40, 30)
    background: tuple[float, float] = (90.0, 150.0)  # grey at the top and the bottom
    noise_sd: float = 2.0
    sharpen: float = 2.5
    sharpen_sd_px: float = 1.5  # in photo pixels (48 across)

    def __post_init__(self) -> None:
        lo, hi = self.side_px
        jx, jy = self.jitter_px
        cx, cy = self.centre
        if not 16 <= lo <= hi or hi + 2 * jx > self.width or hi + 2 * jy > self.height:
            raise ConfigError(f"side_px={self.side_px} with jitter {self.jitter_px} does not fit a "
                              f"{self.width}x{self.height} frame")  # fmt: skip
        if not (hi / 2 + jx <= cx <= self.width - hi / 2 - jx and hi / 2 + jy <= cy <= self.height - hi / 2 - jy):
            raise ConfigError(f"centre={self.centre}: the photo must stay inside the frame at every jitter")
        if self.noise_sd < 0 or self.sharpen < 0 or self.sharpen_sd_px <= 0:
            raise ConfigError(f"noise_sd={self.noise_sd}, sharpen={self.sharpen} must be >= 0 and "
                              f"sharpen_sd_px={self.sharpen_sd_px} > 0")


def place(photo: np.ndarray, name: str, placement: WebcamPlacement | None = None, *, frame: int = 0) -> np.ndarray:
    """The BGR uint8 webcam frame [H, W, 3] that shows `photo` (grey uint8 [48, 48]): a pure function of the
    photo, its name, the placement and `frame`, the index of the frame in a video of the photo. Size and
    position come from the name alone; the sensor noise is drawn afresh for each frame, as a webcam's is (a
    camera that delivers identical frames is a frozen camera to qamoe-live, and its vision is not trusted)."""
    p = placement if placement is not None else WebcamPlacement()
    digest = name_digest(name)
    rng = np.random.default_rng(int.from_bytes(digest[8:16], "big"))
    side = int(rng.integers(p.side_px[0], p.side_px[1] + 1))
    cx = p.centre[0] + int(rng.integers(-p.jitter_px[0], p.jitter_px[0] + 1))
    cy = p.centre[1] + int(rng.integers(-p.jitter_px[1], p.jitter_px[1] + 1))
    top, bottom = p.background
    image = np.repeat(np.linspace(top, bottom, p.height, dtype=np.float32)[:, None], p.width, axis=1)
    x0, y0 = cx - side // 2, cy - side // 2
    face = cv2.resize(photo, (side, side), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    if p.sharpen > 0:
        blurred = cv2.GaussianBlur(face, (0, 0), p.sharpen_sd_px * side / photo.shape[0])
        face += p.sharpen * (face - blurred)
    image[y0 : y0 + side, x0 : x0 + side] = face
    if p.noise_sd > 0:
        noise = np.random.default_rng([int.from_bytes(digest[16:24], "big"), frame])
        image += noise.normal(0.0, p.noise_sd, image.shape).astype(np.float32)
    grey = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)


def write_held_video(data: FerData, faces: list[FerFace], hold_s: float, path: Path, fps: int = 10
                     ) -> list[tuple[float, float]]:  # fmt: skip
    """Each photo `place`d and held `hold_s` in one MJPG video at `fps` (a USB webcam's 10 by default), fresh
    sensor noise in every frame; the photos' (start, end) spans in seconds."""
    frames_each = round(hold_s * fps)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (640, 480))
    if not writer.isOpened():
        raise DataError(f"OpenCV cannot write an MJPG video at {path}")
    spans = []
    try:
        for i, f in enumerate(faces):
            for k in range(frames_each):
                writer.write(place(data.images[f.index], f.key.split("/", 1)[1], frame=k))
            spans.append((i * frames_each / fps, (i + 1) * frames_each / fps))
    finally:
        writer.release()
    return spans
