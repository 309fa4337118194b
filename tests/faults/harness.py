"""The live pipeline in-process, for fault injection: `LiveRuntime` on a thread over real sources, the real ORT
backend and a real ZeroMQ socket read by a real SUB (`Collector`), with deadlines instead of sleeps.

Times are measured on the monotonic clock the pipeline stamps its messages with (same host): a fault injected at
`t` is *detected* by the first message sent after `t` that shows it, and *recovered* by the first one after the
device's return that shows the modality back."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np

from edge.pipeline.build import Components
from edge.pipeline.runtime import LiveRuntime, RunOutcome, capture_workers
from edge.pipeline.session import Session
from edge.pipeline.stages import WindowResult
from edge.publish import Publisher, PublisherConfig, validate
from edge.sources import AudioWorker, CameraUri, MicUri, ReplayConfig, VideoWorker, WorkerConfig
from tests.support.live_fixtures import Collector

NS = 1_000_000_000


def now_ns() -> int:
    return time.monotonic_ns()


def sent_ns(body: dict) -> int:
    return int(body["sent"]["mono_ns"])


def present(body: dict, modality: str) -> bool:
    return bool(body["modalities"][modality]["present"])


def device_state(body: dict, role: str) -> str | None:
    device = body["devices"].get(role)
    return None if device is None else device["state"]


@dataclass
class Live:
    """Run with `with Live(comps, camera, mic) as live:`; `live.wait(...)` polls what the subscriber received."""

    comps: Components
    camera: CameraUri | None
    mic: MicUri | None
    replay: ReplayConfig | None = None
    worker: WorkerConfig | None = None
    wrap_video: Callable[[Any], Any] | None = None  # fault-injecting decorator around the VideoSource
    wrap_audio: Callable[[Any], Any] | None = None
    publisher: PublisherConfig = field(default_factory=lambda: PublisherConfig(endpoint="tcp://127.0.0.1:0"))
    subscribe: bool = True  # False: nobody listens until the test connects its own subscribers
    results: list[WindowResult] = field(default_factory=list)  # what the model saw, per published window

    def __enter__(self) -> Self:
        self.comps.reset()
        self.pub = Publisher(self.publisher)
        self.sub = Collector(self.pub.endpoint) if self.subscribe else None
        if self.sub is not None:
            assert self.pub.wait_for_subscribers(1, timeout_s=10), "the test subscriber never connected"

        def session(ws):  # type: ignore[no-untyped-def]
            return Session(windows=ws, publisher=self.pub, model=self.comps.model, source_id="faults",
                           on_result=lambda r, _body: self.results.append(r))  # fmt: skip

        video, audio = capture_workers(self.camera, self.mic, replay=self.replay, worker=self.worker)
        if video is not None and self.wrap_video is not None:
            video = VideoWorker(self.wrap_video(video.source), self.worker)
        if audio is not None and self.wrap_audio is not None:
            audio = AudioWorker(self.wrap_audio(audio.source), self.worker)
        self.runtime = LiveRuntime(self.comps, session, video, audio)
        self.stop_event = threading.Event()
        self.outcome: RunOutcome | None = None
        self.error: Exception | None = None
        self.t_start_ns = now_ns()
        self._thread = threading.Thread(target=self._run, name="faults-live", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self.outcome = self.runtime.run(self.stop_event)
        except Exception as e:  # noqa: BLE001 - re-raised in stop(), on the test's thread
            self.error = e

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> RunOutcome:
        if self.stop_event.is_set():
            assert self.outcome is not None
            return self.outcome
        self.stop_event.set()
        self._thread.join(10)
        if self.sub is not None:
            self.sub.stop(0.3)
        self.pub.close()
        assert not self._thread.is_alive(), "the live runtime did not stop within 10 s"
        if self.error is not None:
            raise self.error
        assert self.outcome is not None
        return self.outcome

    # ---------------------------------------------------------------- what the subscriber received
    def of(self, suffix: str, after_ns: int = 0, sub: Collector | None = None) -> list[dict]:
        sub = sub or self.sub
        assert sub is not None
        return [b for b in list(sub.of(suffix)) if sent_ns(b) >= after_ns]

    def wait(self, predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
        """Poll until `predicate()` is truthy (returned); fail naming `what` after the deadline."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.error is not None or not self._thread.is_alive():
                raise AssertionError(f"the live runtime ended while waiting for {what}: {self.error!r}")
            got = predicate()
            if got:
                return got
            time.sleep(0.02)
        raise AssertionError(f"{what}: not within {timeout_s} s")

    def first(
        self,
        suffix: str,
        test: Callable[[dict], bool],
        after_ns: int,
        timeout_s: float,
        what: str,
        sub: Collector | None = None,
    ) -> dict:
        """The first message on the topic sent after `after_ns` that passes `test` (on `sub`, default ours)."""

        def find() -> dict | None:
            return next((b for b in self.of(suffix, after_ns, sub) if test(b)), None)

        return self.wait(find, timeout_s, what)

    def settle(self, windows: int = 2, timeout_s: float = 30.0) -> int:
        """Wait until the pipeline publishes (`windows` sentiment windows and a health message); returns now."""
        self.wait(lambda: len(self.of("sentiment")) >= windows and self.of("health"), timeout_s, "going live")
        return now_ns()

    def results_after(self, start_ns: int) -> Iterator[WindowResult]:
        return (r for r in list(self.results) if r.window.start_ns >= start_ns)


def empty_reliability(comps: Components, modality: str) -> float:
    """The reliability the model gives `modality` when it has no step at all (mask all False, values 0: what the
    assembler makes of a lost device). A modality's reliability depends on its own steps only, so every fully
    masked window must publish exactly this number: the variance bound's r = sigmoid(-8) ~ 3e-4 (docs/MODEL.md,
    "Absent modalities")."""
    text_feats, text_mask = comps.text.encode_words([])
    inputs = {"text_feats": text_feats[None], "text_mask": np.zeros_like(text_mask)[None]}
    for name in ("audio", "vision"):
        stream = comps.spec.stream(name)
        inputs[f"{name}_feats"] = np.zeros((1, stream.max_steps, stream.dim), np.float32)
        inputs[f"{name}_mask"] = np.zeros((1, stream.max_steps), bool)
    return float(np.asarray(comps.backend.infer(inputs)[f"reliability_{modality}"]).reshape(-1)[0])


def check_stream(messages: list[tuple[str, dict]]) -> dict[str, int]:
    """Every message valid against its schema and every topic's seq gap-free from 0; returns the counts."""
    counts = {}
    for topic, body in messages:
        validate(topic, body)
    for topic in sorted({t for t, _ in messages}):
        seqs = [b["seq"] for t, b in messages if t == topic]
        assert seqs == list(range(len(seqs))), f"{topic}: seq not gap-free from 0: {seqs[:5]}...{seqs[-5:]}"
        counts[topic] = len(seqs)
    return counts


def lost(messages: list[tuple[str, dict]]) -> int:
    """Messages the publisher numbered but the subscriber never got (by the last health's published counts)."""
    health = [b for t, b in messages if t.endswith("health")]
    if not health:
        return 0
    published = health[-1]["messages"]["published"]
    seen: dict[str, set[int]] = {}
    for topic, body in messages:
        seen.setdefault(topic, set()).add(body["seq"])
    # only what was numbered before that health message was sent
    return sum(len(set(range(n)) - seen.get(topic, set())) for topic, n in published.items())
