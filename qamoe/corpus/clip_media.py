"""Reading a recorded clip's media for offline extraction: its audio as 16 kHz mono PCM (PyAV, through
`edge.asr.load_audio_16k`) and its video frames with their times (OpenCV).

Time. The first audio sample is t = 0; video frames are timed by the container (`CAP_PROP_POS_MSEC`, which
OpenCV counts from the video stream's start) or, where that does not advance, one frame period after the
previous frame. A file that cannot be read is a `ClipReadError`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np

from edge.asr import AsrInputError, load_audio_16k
from edge.vocab import NS
from qamoe.corpus.offline_errors import ClipReadError, OfflineConfigError

AudioInput = np.ndarray | str | os.PathLike[str] | None


def load_pcm(audio: AudioInput) -> np.ndarray | None:
    """Mono float32 PCM at 16 kHz from PCM (checked, not copied) or a media file; None stays None."""
    if audio is None:
        return None
    if isinstance(audio, np.ndarray):
        if audio.ndim != 1 or audio.dtype != np.float32:
            raise OfflineConfigError(
                f"audio PCM must be mono float32 at 16 kHz, got {audio.dtype} {audio.shape}: convert it with "
                "edge.features.to_mono_16k(samples, rate)"
            )
        pcm = audio
    else:
        path = Path(audio)
        if not path.is_file():
            raise ClipReadError(f"no file at {path}: check the path")
        try:
            pcm = load_audio_16k(path)
        except AsrInputError as exc:
            raise ClipReadError(str(exc)) from exc
    if pcm.size == 0:
        what = "the PCM" if isinstance(audio, np.ndarray) else str(audio)
        raise ClipReadError(f"{what} holds no audio samples: pass a clip with sound, or audio=None")
    return pcm


def open_video(path: Path) -> cv2.VideoCapture:
    """An opened capture of `path` (the caller releases it)."""
    if not path.is_file():
        raise ClipReadError(f"no file at {path}: check the path")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ClipReadError(f"OpenCV cannot open {path} as video: the file is corrupt or not a video")
    return cap


def frame_period_ns(cap: cv2.VideoCapture, default_fps: float) -> float:
    """One frame's period from the container's frame rate, or `default_fps` where it states none."""
    fps = cap.get(cv2.CAP_PROP_FPS)
    return NS / (fps if math.isfinite(fps) and 0 < fps <= 1000 else default_fps)


def video_duration_ns(path: Path, default_fps: float) -> int:
    """A video-only clip's length: the last frame's time plus one frame period (decodes the whole file)."""
    cap = open_video(path)
    period_ns = frame_period_ns(cap, default_fps)
    times: list[int] = []
    try:
        while cap.grab():
            times.append(frame_time(cap, times, period_ns))
    finally:
        cap.release()
    if not times:
        raise no_frames(path)
    return times[-1] + round(period_ns)


def frame_time(cap: cv2.VideoCapture, earlier: list[int], period_ns: float) -> int:
    """The container's time of the frame just grabbed, or one period after the previous frame where the
    container's time does not advance (missing timestamps)."""
    pos_ms = cap.get(cv2.CAP_PROP_POS_MSEC)
    t = round(pos_ms * 1e6) if math.isfinite(pos_ms) else -1
    if earlier and t <= earlier[-1]:
        t = earlier[-1] + round(period_ns)
    return max(t, 0)


def no_frames(path: Path) -> ClipReadError:
    """The error of a video file that opened but gave no frame."""
    return ClipReadError(f"{path} holds no decodable video frames: the file is corrupt or not a video")
