"""One run of the pipeline: the stages, the publisher and the counters, shared by the live and replay drivers.

Exactly one thread (the driver's main loop) calls `accept`, `accept_words`, `step` and `health`: it owns the
window stage (and so the inference session) and the publisher socket."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from edge.asr.words import Word
from edge.pipeline.stages import WindowResult, WindowStage, class_probs, reliabilities
from edge.publish.messages import (
    DeviceStatus,
    Estimate,
    HealthStats,
    ModelInfo,
    QueueStats,
    WindowInfo,
    health_message,
    sentiment_message,
    transcript_message,
)
from edge.publish.publisher import Publisher
from edge.publish.wire import POLARITY_NEUTRAL_BAND, Message
from edge.vocab import NS

log = logging.getLogger(__name__)

ResultHook = Callable[[WindowResult, dict | None], None]


@dataclass
class Counters:
    started_mono: float = field(default_factory=time.monotonic)
    windows: int = 0
    invalid_windows: int = 0
    words: int = 0
    fps: dict[str, deque] = field(default_factory=lambda: {"video": deque(maxlen=64), "windows": deque(maxlen=64)})

    def tick(self, what: str) -> None:
        self.fps.setdefault(what, deque(maxlen=64)).append(time.monotonic())

    def rate(self, what: str) -> float | None:
        stamps = self.fps.get(what)
        if not stamps or len(stamps) < 2 or stamps[-1] - stamps[0] <= 0:
            return None
        return (len(stamps) - 1) / (stamps[-1] - stamps[0])


class Session:
    def __init__(
        self,
        *,
        windows: WindowStage,
        publisher: Publisher,
        model: ModelInfo,
        source_id: str,
        on_result: ResultHook | None = None,
    ) -> None:
        self.windows, self.publisher, self.model = windows, publisher, model
        self.source_id = source_id
        self.on_result = on_result
        self.counters = Counters()

    def accept(self, samples) -> None:
        for s in samples:
            self.windows.push(s)

    def accept_words(self, words: list[Word]) -> None:
        if not words:
            return
        self.windows.push_words(words)
        self.counters.words += len(words)
        self.publisher.publish(transcript_message(source_id=self.source_id, words=words))

    def share_frame(self, message: Message) -> None:
        """Publish a `qamoe.v1.frame` message (`edge.pipeline.frames.FrameSharer`; only with --share-frames)."""
        self.publisher.publish(message)

    def step(self, now_ns: int, capture_ns: Mapping[str, int] | None = None) -> list[WindowResult]:
        """Close every window due at `now_ns`, infer and publish each. Returns the results (for overlays)."""
        results = self.windows.ready(now_ns)
        for r in results:
            self._publish(r, now_ns)
        return results

    def _publish(self, r: WindowResult, now_ns: int) -> None:
        w = r.window
        presence = {"text": bool(w.masks.get("text", np.zeros(1, bool)).any()), **{
            s: bool(w.masks[s].any()) for s in ("audio", "vision")}}
        info = WindowInfo(self.source_id, w.start_ns, w.end_ns, presence, r.transcript)
        t_publish = time.perf_counter()
        latency = dict(r.latency_ms)
        estimate = None
        if r.outputs is not None:
            o = r.outputs
            valence, var = float(o["valence"]), float(o["predictive_variance"])
            estimate = Estimate(
                valence=valence,
                predictive_variance=var,
                reliability=reliabilities(o),
                router_weights=[float(x) for x in np.ravel(o["router_weights"])],
                class_probs=class_probs(valence, var, POLARITY_NEUTRAL_BAND),
            )
        now = time.monotonic_ns()
        latency["publish"] = (time.perf_counter() - t_publish) * 1e3
        lateness_ns = int(self.windows.assembler.config.lateness_s * NS)
        latency["close_to_publish"] = max(0.0, (now - w.end_ns - lateness_ns) / 1e6)
        latency["total"] = max(0.0, (now - w.end_ns) / 1e6)
        message = sentiment_message(info, estimate, self.model, latency_ms=latency, invalid_reason=r.error)
        self.publisher.publish(message)
        self.counters.windows += 1
        self.counters.tick("windows")
        if not message.body.get("valid", True):
            self.counters.invalid_windows += 1
        if self.on_result is not None:
            self.on_result(r, message.body)

    def window_stats(self) -> QueueStats:
        """Windows that fell so far behind that they were skipped (never published: no sequence number)."""
        assembler = self.windows.assembler
        return QueueStats("skip_oldest", 0, assembler.config.max_pending_windows, assembler.dropped_windows)

    def health(
        self,
        devices: Mapping[str, DeviceStatus],
        queues: Mapping[str, QueueStats],
        *,
        asr_lag_s: float | None = None,
        real_time_factor: float | None = None,
    ) -> None:
        messages = self.publisher.stats()
        # the subscribers as a queue: depth = connected now, capacity = the connection cap, dropped = connections
        # closed (a subscriber that stops reading is cut off by heartbeats after ~3 s and reconnects by itself;
        # what it missed is its gap)
        subscribers = QueueStats("heartbeat_cutoff", messages.connected, messages.max_connections,
                                 messages.disconnected)
        # peers disconnected for breaking a publishing rule (edge.publish.guard): a hostile or broken subscriber
        guard = QueueStats("refuse_and_disconnect", messages.subscribers, messages.max_subscribers,
                           sum(messages.refused.values()))
        # the port's door (edge.publish.door): depth = connections open, capacity = the count above which it
        # shuts (0: no door, ipc:// or not Linux), dropped = times it shut
        door = QueueStats("pause_accepts", messages.connected, messages.pause_accepts_at, messages.accept_pauses)
        stats = HealthStats(
            source_id=self.source_id,
            uptime_s=time.monotonic() - self.counters.started_mono,
            fps={k: self.counters.rate(k) for k in self.counters.fps},
            queues={**queues, "subscribers": subscribers, "subscriber_guard": guard, "subscriber_door": door},
            devices=dict(devices),
            messages=messages,
            asr_lag_s=asr_lag_s,
            real_time_factor=real_time_factor,
        )
        self.publisher.publish(health_message(stats))
