"""GRID clips joined into one audio-video file for the live benchmarks (tools/bench_live.py): MPEG-4 video at
25 fps and 16 kHz mono PCM in an MKV, each clip's audio padded or cut to its video's length."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

SAMPLE_RATE = 16_000
FPS = 25


def make_montage(clips: list[Path], out: Path) -> float:
    """Concatenate `clips` into one MKV (MPEG-4 video at 25 fps, 16 kHz mono PCM), each clip's audio padded or
    cut to its video's length so the tracks stay aligned; returns the length in seconds."""
    import av

    from edge.asr.audio_file import load_audio_16k

    pcm: list[np.ndarray] = []
    with av.open(str(out), "w") as dst:
        vs = dst.add_stream("mpeg4", rate=FPS)
        vs.width, vs.height, vs.pix_fmt, vs.bit_rate = 360, 288, "yuv420p", 2_000_000
        aus = dst.add_stream("pcm_s16le", rate=SAMPLE_RATE, layout="mono")
        n_video = 0
        for clip in clips:
            first = n_video
            with av.open(str(clip)) as src:
                for frame in src.decode(video=0):
                    img = frame.reformat(width=360, height=288, format="yuv420p")
                    img.pts, img.time_base = n_video, Fraction(1, FPS)
                    dst.mux(vs.encode(img))
                    n_video += 1
            need = (n_video - first) * SAMPLE_RATE // FPS
            audio = load_audio_16k(clip)[:need]
            pcm.append(np.pad(audio, (0, need - audio.shape[0])))
        dst.mux(vs.encode(None))
        _write_audio(dst, aus, np.concatenate(pcm))
    return n_video / FPS


def _write_audio(dst: Any, stream: Any, pcm: np.ndarray, block: int = 1024) -> None:
    import av

    s16 = (np.clip(pcm, -1.0, 1.0) * 32767).astype(np.int16)
    for i in range(0, s16.shape[0], block):
        frame = av.AudioFrame.from_ndarray(s16[None, i : i + block], format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = SAMPLE_RATE, i, Fraction(1, SAMPLE_RATE)
        dst.mux(stream.encode(frame))
    dst.mux(stream.encode(None))
