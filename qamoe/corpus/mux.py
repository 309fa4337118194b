"""One media file from a silent video and a speech track: what `qamoe-live --video-file` replays with both
tracks (the demo clip of tools/make_demo.py, the words-against-face stream of tools/evaluate_conflicts.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

RATE = 16000


def mux(video: Path, pcm: np.ndarray, out: Path) -> None:
    """`video`'s video stream (packets copied, not re-encoded) with `pcm` (mono float32 at 16 kHz) as its AAC
    audio, into the MP4 `out` (written beside it and renamed, so `out` is never half-written)."""
    import av

    tmp = out.with_name(f".{out.name}.tmp.mp4")
    with av.open(str(video)) as src, av.open(str(tmp), "w") as dst:
        vin = src.streams.video[0]
        vout = dst.add_stream_from_template(vin)
        aout = dst.add_stream("aac", rate=RATE, layout="mono")
        for packet in src.demux(vin):
            if packet.dts is None:
                continue
            packet.stream = vout
            dst.mux(packet)
        for i in range(0, pcm.size, 1024):
            frame = av.AudioFrame.from_ndarray(pcm[None, i:i + 1024].copy(), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = RATE, i
            dst.mux(aout.encode(frame))
        dst.mux(aout.encode(None))
    tmp.replace(out)
