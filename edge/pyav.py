"""PyAV's audio resampler as the runtime uses it: to mono float32 at 16 kHz, on the caller's thread.

PyAV 18.1.1 added `AudioResampler(threads=...)` with a default of 0 (FFmpeg picks one worker per core) for the
filter graph behind it. Our resamplers convert one small frame at a time, so a pool buys nothing; and a graph is
freed only by Python's cyclic GC, so a source that makes a resampler per loop pass kept two idle threads per pass
alive (measured: `--video-file X --loop` grew from 21 to 27 threads in two minutes). One thread, everywhere.
Older PyAV (no `threads` argument) already ran the graph on one thread.
"""

from __future__ import annotations

from typing import Any

from edge.vocab import SAMPLE_RATE


def mono_resampler(rate: int = SAMPLE_RATE) -> Any:
    """An `av.AudioResampler` to mono float32 at `rate` whose filter graph starts no threads."""
    import av  # local: PyAV comes with faster-whisper; only file input and device resampling need it

    try:
        return av.AudioResampler(format="flt", layout="mono", rate=rate, threads=1)
    except TypeError:  # PyAV < 18.1.1: no `threads` argument, and a single-threaded graph
        return av.AudioResampler(format="flt", layout="mono", rate=rate)
