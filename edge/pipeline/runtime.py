"""The live pipeline on threads: capture workers, a vision thread, an audio thread, an ASR thread, and the main
loop that owns the windows, the inference session and the publisher.

  camera -> VideoWorker (latest frame wins) -> vision thread -+
  mic    -> AudioWorker (ring, seconds)     -> audio thread  -+-> events queue (drop-oldest) -> main loop
                                 audio thread -> asr queue (drop-oldest) -> ASR thread -+        (windows,
                                                                                                 inference,
Every queue is bounded with a named drop policy and its drops are published in health. Windows close on the  publish)
monotonic clock, so a dead device yields masked steps and on-time windows, never a stall."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from edge.pipeline.build import Components
from edge.pipeline.frames import FrameSharer
from edge.pipeline.health import HealthReport, ThreadStates
from edge.pipeline.queues import DropOldestQueue
from edge.pipeline.session import Session
from edge.pipeline.video_out import VideoOut
from edge.sources import (
    AudioSourceConfig,
    AudioWorker,
    CameraUri,
    MicUri,
    ModalityState,
    ReadStatus,
    ReplayConfig,
    VideoSourceConfig,
    VideoWorker,
    WorkerConfig,
    open_audio_source,
    open_video_source,
)
from edge.vocab import NS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOutcome:
    reason: str  # "eos" | "stopped" | "duration"
    windows: int
    words: int
    thread_errors: tuple[str, ...]


def capture_workers(
    camera: CameraUri | None,
    mic: MicUri | None,
    *,
    replay: ReplayConfig | None = None,
    worker: WorkerConfig | None = None,
) -> tuple[VideoWorker | None, AudioWorker | None]:
    """The capture workers of a camera and a microphone (None where there is none); not started."""
    replay = replay or ReplayConfig()
    video = VideoWorker(open_video_source(VideoSourceConfig(camera, replay=replay)), worker) if camera else None
    audio = AudioWorker(open_audio_source(AudioSourceConfig(mic, replay=replay)), worker) if mic else None
    return video, audio


class LiveRuntime:
    """Runs the pipeline's threads around the given capture workers (`capture_workers`) until stopped, the
    media ends or the duration is up; `run()` returns why."""

    def __init__(
        self,
        comps: Components,
        make_session: Callable[..., Session],
        video: VideoWorker | None,
        audio: AudioWorker | None,
        *,
        health_period_s: float = 1.0,
        frame_sink: VideoOut | None = None,
        frame_share: FrameSharer | None = None,
    ) -> None:
        self.comps = comps
        self.frame_sink = frame_sink  # --out / --preview: offer() never blocks (its own bounded queue)
        self.frame_share = frame_share  # --share-frames: encodes on the vision thread, a few frames a second
        self.video, self.audio = video, audio
        self.t0_ns = time.monotonic_ns()
        self.session = make_session(comps.window_stage(self.t0_ns))
        self.events = DropOldestQueue("events", 512)
        self.asr_q = DropOldestQueue("asr_audio", 64)
        self.health_period_s = health_period_s
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._errors: list[str] = []
        self._states = ThreadStates()
        self._report = HealthReport(
            self._states, {"events": self.events, "asr_audio": self.asr_q}, video, audio,
            comps.asr if audio is not None else None, frame_sink, frame_share,
        )  # fmt: skip
        self._ended = {
            "video": video is None, "audio": audio is None, "asr": comps.asr is None or audio is None
        }

    # ------------------------------------------------------------------ threads
    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        def guarded() -> None:
            try:
                target()
            except Exception as e:  # surfaced to the main loop: logged, counted, the rest keeps running
                log.error("%s thread failed: %s", name, e, exc_info=log.isEnabledFor(logging.DEBUG))
                self._errors.append(f"{name}: {type(e).__name__}: {e}")
                self._states.failed[name] = f"{type(e).__name__}: {e}"
                self._ended[name] = True

        t = threading.Thread(target=guarded, name=f"qamoe-{name}", daemon=True)
        t.start()
        self._threads.append(t)

    def _vision_loop(self) -> None:
        assert self.video is not None and self.comps.vision is not None
        while not self._stop.is_set():
            frame = self.video.get(timeout_s=0.2)
            if frame.status is ReadStatus.EOS or self.video.state is ModalityState.ENDED:
                self.events.put(("samples", self.comps.vision.finish()))
                break
            if frame.status is ReadStatus.OK:
                self._states.frozen = frame.frozen
                self.session.counters.tick("video")
                if self.frame_sink is not None:
                    self.frame_sink.offer(frame)
                self.events.put(("samples", self.comps.vision.push(frame)))
                if self.frame_share is not None:
                    shared = self.frame_share.offer(self.comps.vision.latest)
                    if shared is not None:  # published by the main loop, which owns the publisher
                        self.events.put(("frame", shared))
        self._ended["video"] = True

    def _audio_loop(self) -> None:
        assert self.audio is not None and self.comps.audio is not None
        while not self._stop.is_set():
            chunk = self.audio.get(timeout_s=0.2, max_s=0.2)
            if chunk.status is ReadStatus.EOS or self.audio.state is ModalityState.ENDED:
                self.events.put(("samples", self.comps.audio.finish()))
                break
            if chunk.status is ReadStatus.OK:
                samples, speech = self.comps.audio.push(chunk)
                self.events.put(("samples", samples))
                self.asr_q.put((chunk, speech))
        self.asr_q.put(None)
        self._ended["audio"] = True

    def _asr_loop(self) -> None:
        assert self.comps.asr is not None
        while not self._stop.is_set():
            item = self.asr_q.get(timeout_s=0.2)
            if item is None:
                if self._ended["audio"]:
                    self.events.put(("words", self.comps.asr.finish()))
                    break
                continue
            self.events.put(("words", self.comps.asr.push(*item)))
        self._ended["asr"] = True

    # ---------------------------------------------------------------- main loop
    def run(self, stop: threading.Event, duration_s: float | None = None) -> RunOutcome:
        for worker in (self.video, self.audio):
            if worker is not None:
                worker.start()  # raises SourceNotFoundError for a device that is not there
        if self.video is not None and self.comps.vision is not None:
            self._spawn("vision", self._vision_loop)
        if self.audio is not None and self.comps.audio is not None:
            self._spawn("audio", self._audio_loop)
            if self.comps.asr is not None:
                self._spawn("asr", self._asr_loop)
        deadline = None if duration_s is None else time.monotonic() + duration_s
        next_health = time.monotonic() + self.health_period_s
        reason = "stopped"
        try:
            while not stop.is_set():
                self._drain()
                self.session.step(time.monotonic_ns())
                if time.monotonic() >= next_health:
                    self._health()
                    next_health += self.health_period_s
                if all(self._ended.values()):
                    reason = "eos"
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    reason = "duration"
                    break
            if reason == "eos":
                self._drain()
                self.session.step(time.monotonic_ns() + int(self.comps.window_config.lateness_s * NS))
        finally:
            self.shutdown()
        c = self.session.counters
        return RunOutcome(reason, c.windows, c.words, tuple(self._errors))

    def _drain(self) -> None:
        item = self.events.get(timeout_s=0.02)
        while item is not None:
            kind, payload = item
            if kind == "samples":
                self.session.accept(payload)
            elif kind == "frame":
                self.session.share_frame(payload)
            else:
                self.session.accept_words(payload)
            item = self.events.get_nowait()

    def _health(self) -> None:
        h = self._report.snapshot(self.session.window_stats())
        self.session.health(h.devices, h.queues, asr_lag_s=h.asr_lag_s, real_time_factor=h.real_time_factor)

    def shutdown(self, timeout_s: float = 1.5) -> None:
        """Stop every thread; bounded in time (the workers' reads time out within 0.5 s)."""
        self._stop.set()
        for worker in (self.video, self.audio):
            if worker is not None:
                worker.stop()
        end = time.monotonic() + timeout_s
        for worker in (self.video, self.audio):
            if worker is not None:
                worker.join(max(0.0, end - time.monotonic()))
        for t in self._threads:
            t.join(max(0.0, end - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            log.warning("threads still running after %.1f s: %s", timeout_s, alive)
