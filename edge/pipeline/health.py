"""What the runtime reports once a second: every device's state and every queue's depth and drops, gathered
from the objects that own them (the capture workers, the runtime's queues, the ASR stage, the video writer)
into the arguments of `Session.health`, which publishes the `qamoe.v1.health` message."""

from __future__ import annotations

from dataclasses import dataclass, field

from edge.pipeline.frames import FrameSharer
from edge.pipeline.queues import DropOldestQueue
from edge.pipeline.stages import AsrStage
from edge.pipeline.video_out import VideoOut
from edge.publish.messages import DeviceStateName, DeviceStatus, QueueStats
from edge.sources import AudioSourceStats, AudioWorker, ModalityState, VideoWorker

_STATE: dict[ModalityState, DeviceStateName] = {
    ModalityState.LIVE: "ok",
    ModalityState.STARTING: "reconnecting",
    ModalityState.ABSENT: "absent",
    ModalityState.ENDED: "absent",
    ModalityState.STOPPED: "absent",
}


@dataclass
class ThreadStates:
    """Written by the runtime's threads, read by `HealthReport`: the error that ended a processing thread (by
    thread name) and whether the latest camera frame repeats the picture before it."""

    failed: dict[str, str] = field(default_factory=dict)
    frozen: bool = False


@dataclass(frozen=True)
class HealthSnapshot:
    devices: dict[str, DeviceStatus]
    queues: dict[str, QueueStats]
    asr_lag_s: float | None
    real_time_factor: float | None


@dataclass(frozen=True)
class HealthReport:
    """The sources of one runtime's health; `snapshot()` reads them all (thread-safe reads of counters)."""

    threads: ThreadStates
    queues: dict[str, DropOldestQueue]
    video: VideoWorker | None = None
    audio: AudioWorker | None = None
    asr: AsrStage | None = None  # None without a microphone
    frame_sink: VideoOut | None = None
    frame_share: FrameSharer | None = None  # --share-frames

    def snapshot(self, windows: QueueStats) -> HealthSnapshot:
        queues = {name: q.stats() for name, q in self.queues.items()}
        queues["windows"] = windows
        if self.frame_sink is not None:
            queues["video_out"] = self.frame_sink.stats()
        if self.frame_share is not None:
            queues["frame_share"] = self.frame_share.stats()
        devices: dict[str, DeviceStatus] = {}
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
        asr = self.asr.asr.stats if self.asr is not None else None
        if self.asr is not None:
            failed = self.threads.failed.get("asr") or self.asr.last_error
            devices["asr"] = DeviceStatus(
                "absent" if failed else "ok", name="whisper",
                detail=f"decode failed ({self.asr.failures} so far): {failed}" if failed else None,
            )  # fmt: skip
            queues["asr_decode"] = QueueStats("drop_on_error", 0, 0, self.asr.failures)
            # words Whisper wrote that the commit guards kept out of the transcript, per rule (edge.asr.guards)
            for rule, words in self.asr.asr.stats.dropped().items():
                queues[f"asr_guard_{rule}"] = QueueStats("commit_guard", 0, 0, words)
        rtf = asr.last_decode_s / asr.step_s if asr is not None and asr.step_s else None
        return HealthSnapshot(devices, queues, asr.lag_s if asr else None, rtf)

    def _device(self, role: str, thread: str, worker: VideoWorker | AudioWorker) -> DeviceStatus:
        name = str(worker.source.uri)[:200]
        failed = self.threads.failed.get(thread)
        if failed:  # the device may be fine, but nothing it delivers is used any more
            return DeviceStatus("absent", name=name, detail=f"{thread} processing failed: {failed}")
        state = _STATE.get(worker.state, "absent")
        if state == "ok" and role == "camera" and self.threads.frozen:
            return DeviceStatus("absent", name=name, detail="frozen: the camera repeats the same picture")
        return DeviceStatus(state, name=name, detail=worker.detail if state != "ok" else None)
