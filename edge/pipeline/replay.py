"""Deterministic fast replay: read a recording as fast as possible, in timestamp order, on one thread.

The same file always gives the same windows, words and outputs (synthesised timestamps, fixed ASR cadence,
windows released by the media clock, i.e. the watermark of the streams still running). For evaluation, tests
and benchmarks; live capture and real-time replay use `edge.pipeline.runtime`."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edge.pipeline.build import Components
from edge.pipeline.session import Session
from edge.pipeline.stages import WindowStage
from edge.sources import (
    AudioChunk,
    AudioSource,
    AudioSourceConfig,
    CameraUri,
    MicUri,
    ReadStatus,
    ReplayConfig,
    VideoFrame,
    VideoSource,
    VideoSourceConfig,
    open_audio_source,
    open_video_source,
)
from edge.vocab import NS

if TYPE_CHECKING:
    from edge.pipeline.frames import FrameSharer
    from edge.pipeline.video_out import VideoOut

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplaySummary:
    media_s: float
    wall_s: float
    windows: int
    words: int

    @property
    def real_time_factor(self) -> float:
        return self.wall_s / self.media_s if self.media_s > 0 else float("nan")


def replay_fast(
    comps: Components,
    make_session: Callable[[WindowStage], Session],
    camera: CameraUri | None,
    mic: MicUri | None,
    stop: threading.Event | None = None,
    frame_sink: VideoOut | None = None,
    frame_share: FrameSharer | None = None,
) -> ReplaySummary:
    """frame_sink (--out): gets every video frame in order, after the windows it completes are published.
    frame_share (--share-frames): offered every analysed frame; shares them at its rate of media time."""
    stop = stop or threading.Event()
    t0 = time.monotonic_ns()
    replay = ReplayConfig(realtime=False, t0_ns=t0)
    video = open_video_source(VideoSourceConfig(camera, replay=replay)) if camera is not None else None
    audio = open_audio_source(AudioSourceConfig(mic, replay=replay)) if mic is not None else None
    session: Session = make_session(comps.window_stage(t0))
    wall0 = time.perf_counter()
    last = {"video": t0, "audio": t0}
    sources: dict[str, VideoSource | AudioSource] = {}
    if video is not None:
        sources["video"] = video
    if audio is not None:
        sources["audio"] = audio
    pending: dict[str, VideoFrame | AudioChunk] = {}
    try:
        for name, src in sources.items():
            src.open()
            pending[name] = src.read()
        while pending and not stop.is_set():
            # media-time order; an end-of-stream carries a wall-clock stamp, so it sorts last, never by time
            name = min(pending, key=lambda k: (pending[k].status is ReadStatus.EOS, pending[k].t_ns))
            item = pending[name]
            if item.status is ReadStatus.EOS:
                del pending[name]
                continue
            _handle(comps, session, name, item, frame_share)
            last[name] = max(last[name], item.t_ns)
            pending[name] = sources[name].read()
            session.step(min(last[k] for k in pending) if pending else max(last.values()))
            if isinstance(item, VideoFrame) and frame_sink is not None:
                frame_sink.offer(item)
        _finish(comps, session, max(last.values()))
    finally:
        for src in sources.values():
            src.close()
    media_s = (max(last.values()) - t0) / NS
    return ReplaySummary(media_s, time.perf_counter() - wall0, session.counters.windows, session.counters.words)


def _handle(comps: Components, session: Session, name: str, item, frame_share: FrameSharer | None) -> None:
    if item.status is not ReadStatus.OK:
        return
    if name == "video" and comps.vision is not None:
        session.counters.tick("video")
        session.accept(comps.vision.push(item))
        shared = frame_share.offer(comps.vision.latest) if frame_share is not None else None
        if shared is not None:
            session.share_frame(shared)
    elif name == "audio" and comps.audio is not None:
        samples, speech = comps.audio.push(item)
        session.accept(samples)
        if comps.asr is not None:
            session.accept_words(comps.asr.push(item, speech))


def _finish(comps: Components, session: Session, end_ns: int) -> None:
    if comps.vision is not None:
        session.accept(comps.vision.finish())
    if comps.audio is not None:
        session.accept(comps.audio.finish())
    if comps.asr is not None:
        session.accept_words(comps.asr.finish())
    # close every window that lies within the media
    session.step(end_ns + int(comps.window_config.lateness_s * NS))
