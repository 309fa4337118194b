"""Typed constructors for the three v1 payloads. They never emit NaN/Inf: such a number becomes null and the
message says `valid: false` with the reason. Field meanings, units and examples: docs/messages.md."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from edge.publish.errors import MessageError
from edge.publish.wire import (
    MAX_NAME_CHARS,
    POLARITIES,
    POLARITY_NEUTRAL_BAND,
    TOPIC_HEALTH,
    TOPIC_SENTIMENT,
    TOPIC_TRANSCRIPT,
    TOPICS,
    VALENCE_RANGE,
    Checks,
    Message,
    WallClock,
    clean_text,
    polarity,
)
from edge.vocab import MODALITIES, NS, Word

DeviceStateName = Literal["ok", "absent", "reconnecting"]
DEVICE_STATES: tuple[str, ...] = ("ok", "absent", "reconnecting")


@dataclass(frozen=True)
class ModelInfo:
    """What produced the estimates; constant for a run. backend e.g. "ort-cpu" / "tensorrt"."""

    backend: str
    model_id: str
    model_hash: str
    feature_spec_digest: str


@dataclass(frozen=True)
class Estimate:
    """The model's output for one window (numpy scalars/arrays are fine).

    reliability: one value in [0, 1] per modality name ("text", "audio", "vision").
    class_probs: optional {"negative", "neutral", "positive"} -> probability."""

    valence: float
    predictive_variance: float
    reliability: Mapping[str, float]
    router_weights: Sequence[float]
    class_probs: Mapping[str, float] | None = None


@dataclass(frozen=True)
class WindowInfo:
    """The window an estimate is for: monotonic ns bounds, which modalities had data, and what was said in it."""

    source_id: str
    start_ns: int
    end_ns: int
    presence: Mapping[str, bool]
    transcript: str = ""


@dataclass(frozen=True)
class QueueStats:
    """One bounded queue: its drop policy by name (e.g. "latest_wins"), depth now, capacity, drops so far."""

    policy: str
    depth: int
    capacity: int
    dropped: int


@dataclass(frozen=True)
class DeviceStatus:
    """A capture device's state; `name` is the device's own (untrusted) name, `detail` why it is not ok."""

    state: DeviceStateName
    name: str | None = None
    detail: str | None = None

    def __post_init__(self) -> None:
        if self.state not in DEVICE_STATES:
            raise MessageError(f"device state {self.state!r}: use one of {', '.join(DEVICE_STATES)}")


@dataclass(frozen=True)
class PublishStats:
    """Per-topic counts from `Publisher.stats()`: messages published (= the next seq), and of those how many a
    subscriber's full queue refused (each is at least one message that subscriber missed; it sees every message it
    missed as a gap in `seq`)."""

    published: Mapping[str, int] = field(default_factory=dict)
    dropped: Mapping[str, int] = field(default_factory=dict)
    connected: int = 0  # subscriber connections open now
    disconnected: int = 0  # connections closed since start: cut off by heartbeats (stalled), crashed, or left
    refused: Mapping[str, int] = field(default_factory=dict)  # peers disconnected for breaking a rule, by rule
    subscribers: int = 0  # connections that have subscribed, now
    max_subscribers: int = 0  # the publisher's cap on them (edge.publish.guard.SubscriberLimits)
    max_connections: int = 0  # its cap on connections, subscribed or not
    accept_pauses: int = 0  # times its port's door shut because too many were open (edge.publish.door)
    pause_accepts_at: int = 0  # connections open at once above which the door shuts; 0: the port has no door


@dataclass(frozen=True)
class HealthStats:
    """One health sample. fps: per source name; queues: per queue name; devices: per device role ("camera")."""

    source_id: str
    uptime_s: float
    fps: Mapping[str, float | None]
    queues: Mapping[str, QueueStats]
    devices: Mapping[str, DeviceStatus]
    messages: PublishStats
    asr_lag_s: float | None = None
    real_time_factor: float | None = None


def sentiment_message(
    window: WindowInfo,
    estimate: Estimate | None,
    model: ModelInfo,
    *,
    latency_ms: Mapping[str, float | None] | None = None,
    invalid_reason: str | None = None,
    clock: WallClock | None = None,
) -> Message:
    """The `qamoe.v1.sentiment` message for one window. `estimate=None` (inference failed) or `invalid_reason`
    publish the window as invalid, so sequence numbers stay gap-free and subscribers see the fault."""
    checks = Checks()
    clock = clock or WallClock.now()
    if window.end_ns < window.start_ns:
        raise MessageError(f"window ends ({window.end_ns}) before it starts ({window.start_ns})")
    if estimate is None and invalid_reason is None:
        invalid_reason = "no model output for this window"
    body: dict[str, Any] = {
        "source_id": clean_text(window.source_id, MAX_NAME_CHARS),
        "window": {
            "start": clock.timepoint(window.start_ns),
            "end": clock.timepoint(window.end_ns),
            "duration_s": (window.end_ns - window.start_ns) / NS,
        },
        **_estimate_fields(estimate, window.presence, checks),
        "transcript": clean_text(window.transcript),
        "latency_ms": _named_numbers(latency_ms or {}, "latency_ms", checks, lo=0.0),
        "backend": clean_text(model.backend, MAX_NAME_CHARS),
        "model": {
            "id": clean_text(model.model_id, MAX_NAME_CHARS),
            "hash": clean_text(model.model_hash, 128),
        },
        "feature_spec_digest": clean_text(model.feature_spec_digest, 128),
    }
    return Message(TOPIC_SENTIMENT, {**checks.verdict(invalid_reason), **body})


def _estimate_fields(
    estimate: Estimate | None, presence: Mapping[str, bool], checks: Checks
) -> dict[str, Any]:
    _require_modalities(presence, "presence")
    present = {m: bool(presence[m]) for m in MODALITIES}
    if estimate is None:
        return {
            "valence": None,
            "polarity": None,
            "polarity_neutral_band": POLARITY_NEUTRAL_BAND,
            "class_probs": None,
            "predictive_variance": None,
            "router_weights": None,
            "modalities": {m: {"present": present[m], "reliability": None} for m in MODALITIES},
        }
    _require_modalities(estimate.reliability, "reliability")
    valence = checks.number(estimate.valence, "valence", -VALENCE_RANGE, VALENCE_RANGE)
    return {
        "valence": valence,
        "polarity": polarity(valence),
        "polarity_neutral_band": POLARITY_NEUTRAL_BAND,
        "class_probs": _class_probs(estimate.class_probs, checks),
        "predictive_variance": checks.number(estimate.predictive_variance, "predictive_variance", 0.0),
        "router_weights": _weights(estimate.router_weights, checks),
        "modalities": {
            m: {
                "present": present[m],
                "reliability": checks.number(estimate.reliability[m], f"reliability.{m}", 0, 1),
            }
            for m in MODALITIES
        },
    }


def _require_modalities(values: Mapping[str, Any], name: str) -> None:
    missing = [m for m in MODALITIES if m not in values]
    if missing:
        raise MessageError(
            f"{name} lacks modalities {missing}: give a value for each of {', '.join(MODALITIES)}"
        )


def _class_probs(probs: Mapping[str, float] | None, checks: Checks) -> dict[str, float | None] | None:
    if probs is None:
        return None
    if set(probs) != set(POLARITIES):
        raise MessageError(f"class_probs keys {sorted(probs)}: give exactly {', '.join(POLARITIES)}")
    return {k: checks.number(probs[k], f"class_probs.{k}", 0, 1) for k in POLARITIES}


def _weights(weights: Sequence[float], checks: Checks) -> list[float] | None:
    values = [checks.number(w, f"router_weights[{i}]", 0, 1) for i, w in enumerate(weights)]
    if not values:
        raise MessageError("router_weights is empty: pass the router's weight per expert")
    numbers = [v for v in values if v is not None]
    return numbers if len(numbers) == len(values) else None


def _named_numbers(
    values: Mapping[str, Any], name: str, checks: Checks, lo: float | None = None
) -> dict[str, Any]:
    return {_key(k): checks.number(v, f"{name}.{k}", lo) for k, v in values.items()}


def _key(name: object) -> str:
    """Map keys are names from code or devices; keep them short and printable-safe on the wire."""
    return clean_text(str(name), 64)


def transcript_message(
    *, source_id: str, words: Sequence[Word], clock: WallClock | None = None
) -> Message:
    """The `qamoe.v1.transcript` message for newly committed words (in order); `text` is the words joined by
    single spaces."""
    checks = Checks()
    clock = clock or WallClock.now()
    items: list[dict[str, Any]] = []
    for i, w in enumerate(words):
        if w.end_ns < w.start_ns:
            raise MessageError(f"word {i} ({w.text!r:.40}) ends before it starts")
        items.append(
            {
                "text": clean_text(w.text, MAX_NAME_CHARS),
                "start": clock.timepoint(w.start_ns),
                "end": clock.timepoint(w.end_ns),
                "confidence": checks.number(w.prob, f"words[{i}].confidence", 0, 1),
            }
        )
    body = {
        "source_id": clean_text(source_id, MAX_NAME_CHARS),
        "text": clean_text(" ".join(item["text"] for item in items)),
        "words": items,
    }
    return Message(TOPIC_TRANSCRIPT, {**checks.verdict(), **body})


def health_message(stats: HealthStats) -> Message:
    """The `qamoe.v1.health` message (publish about once a second); its time is the envelope's `sent`."""
    checks = Checks()
    body = {
        "source_id": clean_text(stats.source_id, MAX_NAME_CHARS),
        "uptime_s": checks.number(stats.uptime_s, "uptime_s", 0.0),
        "fps": _named_numbers(stats.fps, "fps", checks, lo=0.0),
        "queues": {_key(k): _queue(q, k, checks) for k, q in stats.queues.items()},
        "asr_lag_s": checks.number(stats.asr_lag_s, "asr_lag_s", 0.0),
        "real_time_factor": checks.number(stats.real_time_factor, "real_time_factor", 0.0),
        "devices": {_key(k): _device(d) for k, d in stats.devices.items()},
        "messages": {
            "published": {
                t: checks.count(stats.messages.published.get(t, 0), f"published.{t}") for t in TOPICS
            },
            "dropped": {t: checks.count(stats.messages.dropped.get(t, 0), f"dropped.{t}") for t in TOPICS},
        },
    }
    return Message(TOPIC_HEALTH, {**checks.verdict(), **body})


def _queue(q: QueueStats, name: str, checks: Checks) -> dict[str, Any]:
    return {
        "policy": clean_text(q.policy, 64),
        "depth": checks.count(q.depth, f"queues.{name}.depth"),
        "capacity": checks.count(q.capacity, f"queues.{name}.capacity"),
        "dropped": checks.count(q.dropped, f"queues.{name}.dropped"),
    }


def _device(d: DeviceStatus) -> dict[str, Any]:
    return {
        "state": d.state,
        "name": None if d.name is None else clean_text(d.name, MAX_NAME_CHARS),
        "detail": None if d.detail is None else clean_text(d.detail, MAX_NAME_CHARS),
    }
