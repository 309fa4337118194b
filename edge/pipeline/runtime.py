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
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edge.pipeline.build import Components
from edge.pipeline.session import Session
from edge.publish.messages import DeviceStatus, QueueStats
from edge.sources import (
    AudioSource,
    AudioSourceConfig,
    AudioSourceStats,
    AudioWorker,
    CameraUri,
    MicUri,
    ModalityState,
    ReadStatus,
    ReplayConfig,
    VideoSource,
    VideoSourceConfig,
    VideoWorker,
)

if TYPE_CHECKING:
    from edge.pipeline.video_out import VideoOut

log = logging.getLogger(__name__)

_STATE = {
    ModalityState.LIVE: "ok",
    ModalityState.STARTING: "reconnecting",
    ModalityState.ABSENT: "absent",
    ModalityState.ENDED: "absent",
    ModalityState.STOPPED: "absent",
}


class DropOldestQueue:
    """A bounded queue whose put never blocks: when full, the oldest item is dropped and counted."""

    def __init__(self, name: str, capacity: int) -> None:
        self.name, self.capacity = name, capacity
        self._q: queue.Queue = queue.Queue(maxsize=capacity)
        self.dropped = 0

    def put(self, item: Any) -> None:
        while True:
            try:
                self._q.put_nowait(item)
                return
            except queue.Full:
                try:
                    self._q.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def get(self, timeout_s: float) -> Any | None:
        try:
            return self._q.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def stats(self) -> QueueStats:
        return QueueStats(policy="drop_oldest", depth=self._q.qsize(), capacity=self.capacity, dropped=self.dropped)


@dataclass(frozen=True)
class RunOutcome:
    reason: str  # "eos" | "stopped" | "duration"
    windows: int
    words: int
    thread_errors: tuple[str, ...]


class LiveRuntime:
    def __init__(
        self,
        comps: Components,
        make_session: Callable[..., Session],
        camera: CameraUri | None,
        mic: MicUri | None,
        *,
        replay: ReplayConfig | None = None,
        health_period_s: float = 1.0,
        frame_sink: VideoOut | None = None,
    ) -> None:
        self.comps = comps
        self.frame_sink = frame_sink  # --out / --preview: offer() never blocks (its own bounded queue)
        replay = replay or ReplayConfig()
        self.video = VideoWorker(VideoSource(VideoSourceConfig(camera, replay=replay))) if camera else None
        self.audio = AudioWorker(AudioSource(AudioSourceConfig(mic, replay=replay))) if mic else None
        self.t0_ns = time.monotonic_ns()
        self.session = make_session(comps.window_stage(self.t0_ns))
        self.events = DropOldestQueue("events", 512)
        self.asr_q = DropOldestQueue("asr_audio", 64)
        self.health_period_s = health_period_s
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._errors: list[str] = []
        self._failed: dict[str, str] = {}  # thread name -> the error that ended it (health shows it)
        self._frozen = False  # the latest camera frame repeats the picture before it
        self._ended = {
            "video": self.video is None, "audio": self.audio is None, "asr": comps.asr is None or mic is None
        }

    # ------------------------------------------------------------------ threads
    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        def guarded() -> None:
            try:
                target()
            except Exception as e:  # surfaced to the main loop: logged, counted, the rest keeps running
                log.error("%s thread failed: %s", name, e, exc_info=log.isEnabledFor(logging.DEBUG))
                self._errors.append(f"{name}: {type(e).__name__}: {e}")
                self._failed[name] = f"{type(e).__name__}: {e}"
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
                self._frozen = frame.frozen
                self.session.counters.tick("video")
                if self.frame_sink is not None:
                    self.frame_sink.offer(frame)
                self.events.put(("samples", self.comps.vision.push(frame)))
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
                self.session.step(time.monotonic_ns() + int(self.comps.window_config.lateness_s * 1e9))
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
            else:
                self.session.accept_words(payload)
            item = self.events.get(timeout_s=0.0) if not self.events._q.empty() else None

    def _health(self) -> None:
        queues = {"events": self.events.stats(), "asr_audio": self.asr_q.stats(), "windows": self._window_stats()}
        if self.frame_sink is not None:
            queues["video_out"] = self.frame_sink.stats()
        devices = {}
        for role, thread, worker in (("camera", "vision", self.video), ("microphone", "audio", self.audio)):
            if worker is None:
                continue
            st = worker.stats()
            devices[role] = self._device(role, thread, worker)
            queues[f"{role}_capture"] = QueueStats(
                policy=st.drop_policy, depth=int(st.queue_depth), capacity=0, dropped=int(st.dropped)
            )
            if isinstance(st.source, AudioSourceStats):  # samples lost before the worker's ring
                queues["microphone_device"] = QueueStats("drop-oldest", 0, 0, st.source.ring_dropped_samples)
                queues["microphone_gaps"] = QueueStats("device", 0, 0, st.source.gap_samples)
        asr_stage = self.comps.asr if self.audio is not None else None
        asr = asr_stage.asr.stats if asr_stage is not None else None
        if asr_stage is not None:
            failed = self._failed.get("asr") or asr_stage.last_error
            devices["asr"] = DeviceStatus(
                "absent" if failed else "ok", name="whisper",
                detail=f"decode failed ({asr_stage.failures} so far): {failed}" if failed else None,
            )  # fmt: skip
            queues["asr_decode"] = QueueStats("drop_on_error", 0, 0, asr_stage.failures)
        rtf = asr.last_decode_s / asr.step_s if asr is not None and asr.step_s else None
        self.session.health(devices, queues, asr_lag_s=asr.lag_s if asr else None, real_time_factor=rtf)

    def _device(self, role: str, thread: str, worker: VideoWorker | AudioWorker) -> DeviceStatus:
        name = str(worker.source.uri)[:200]
        if thread in self._failed:  # the device may be fine, but nothing it delivers is used any more
            return DeviceStatus("absent", name=name, detail=f"{thread} processing failed: {self._failed[thread]}")
        state = _STATE.get(worker.state, "absent")
        if state == "ok" and role == "camera" and self._frozen:
            return DeviceStatus("absent", name=name, detail="frozen: the camera repeats the same picture")
        return DeviceStatus(state, name=name, detail=worker.detail if state != "ok" else None)

    def _window_stats(self) -> QueueStats:
        """Windows that fell so far behind that they were skipped (never published: no sequence number)."""
        assembler = self.session.windows.assembler
        return QueueStats("skip_oldest", 0, assembler.config.max_pending_windows, assembler.dropped_windows)

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
