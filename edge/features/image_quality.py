"""Whole-frame image-quality cues for the visual stream: how much the model should trust the face features.

On the 8-bit grey frame g (OpenCV's BGR->grey weights 0.299 R + 0.587 G + 0.114 B), optionally first reduced
with `cv2.INTER_AREA` so that its longer side is at most `max_side` pixels:
- brightness = mean(g) / 255                                  (0 black ... 1 white)
- contrast   = std(g) / 255                                   (0 flat ... 0.5 half black, half white)
- blur       = log10(1 + var(Laplacian(g)))                   (higher = sharper; 0 for a flat frame)
  with OpenCV's 3x3 Laplacian (aperture 1: [[0, 1, 0], [1, -4, 1], [0, 1, 0]]) on intensities 0..255. The
  variance of the Laplacian falls as a frame loses high frequencies (defocus, motion blur); the log keeps its
  range (about 0..5) comparable with the other columns.

Why `max_side`: the Laplacian's variance depends on resolution (the same scene at 1080p has less energy per
pixel at the highest frequencies than at 480p), so frames larger than `max_side` are reduced to it first to
keep the blur cue comparable between a 1080p webcam and 640x480 training clips. Smaller frames are not
enlarged (enlarging adds no detail).
"""

from __future__ import annotations

import cv2
import numpy as np

QUALITY_COLUMNS = ("brightness", "contrast", "blur")


def image_quality(grey: np.ndarray, max_side: int | None = 640) -> tuple[float, float, float]:
    """(brightness, contrast, blur) of a 2-D uint8 grey frame, as defined in the module docstring."""
    if max_side is not None and max(grey.shape) > max_side:
        scale = max_side / max(grey.shape)
        size = (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale)))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    mean, std = cv2.meanStdDev(grey)
    _, lap_std = cv2.meanStdDev(cv2.Laplacian(grey, cv2.CV_32F))
    blur = float(np.log10(1.0 + float(lap_std[0, 0]) ** 2))
    return float(mean[0, 0]) / 255.0, float(std[0, 0]) / 255.0, blur
