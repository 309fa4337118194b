"""Deterministic example messages: the ones shown in docs/messages.md, and fixtures for tests and demos."""

from __future__ import annotations

from edge.publish.messages import (
    DeviceStatus,
    Estimate,
    HealthStats,
    ModelInfo,
    PublishStats,
    QueueStats,
    WindowInfo,
    health_message,
    sentiment_message,
    transcript_message,
)
from edge.publish.wire import TOPIC_HEALTH, TOPIC_SENTIMENT, TOPIC_TRANSCRIPT, Message, WallClock
from edge.vocab import Word

EXAMPLE_CLOCK = WallClock(
    offset_ns=1_767_225_600_000_000_000 - 5_000_000_000_000
)  # 2026-01-01T00:00:00Z at 5000 s
T0_NS = 5_000_000_000_000
EXAMPLE_MODEL = ModelInfo(
    backend="ort-cpu",
    model_id="qamoe_small",
    model_hash="9f2c4e6a1b3d5f7e9a0c2e4f6a8b0d1c3e5f7a9b1d3f5e7c9a0b2d4f6e8a0c2e",
    feature_spec_digest="4b1e8d2c7a9f0e3b5d6c8a1f2e4b7d9c0a3f5e8b1d2c4a6f9e0b3d5c7a8f1e2d",
)


def example_sentiment(
    *, valence: float = 1.2, transcript: str = "bin blue at f two now", start_ns: int = T0_NS
) -> Message:
    window = WindowInfo(
        source_id="cam0",
        start_ns=start_ns,
        end_ns=start_ns + 2_000_000_000,
        presence={"text": True, "audio": True, "vision": False},
        transcript=transcript,
    )
    estimate = Estimate(
        valence=valence,
        predictive_variance=0.31,
        reliability={"text": 0.82, "audio": 0.64, "vision": 0.05},
        router_weights=[0.61, 0.39, 0.0, 0.0],
    )
    latency = {"features": 7.9, "inference": 0.4, "publish": 0.3, "close_to_publish": 21.5, "total": 471.5}
    return sentiment_message(window, estimate, EXAMPLE_MODEL, latency_ms=latency, clock=EXAMPLE_CLOCK)


def example_transcript(*, words: tuple[str, ...] = ("bin", "blue", "at"), start_ns: int = T0_NS) -> Message:
    timed = [
        Word(w, start_ns + i * 300_000_000, start_ns + i * 300_000_000 + 250_000_000, 0.93 - 0.01 * i)
        for i, w in enumerate(words)
    ]
    return transcript_message(source_id="cam0", words=timed, clock=EXAMPLE_CLOCK)


def example_health(*, device_name: str = "HD Webcam C270") -> Message:
    stats = HealthStats(
        source_id="cam0",
        uptime_s=63.0,
        fps={"camera": 29.9, "microphone": 31.2},
        queues={
            "video": QueueStats(policy="latest_wins", depth=1, capacity=2, dropped=3),
            "audio": QueueStats(policy="ring_seconds", depth=12, capacity=150, dropped=0),
        },
        devices={
            "camera": DeviceStatus("ok", name=device_name),
            "microphone": DeviceStatus("ok", name="default"),
        },
        messages=PublishStats(
            published={TOPIC_SENTIMENT: 120, TOPIC_TRANSCRIPT: 41, TOPIC_HEALTH: 62},
            dropped={TOPIC_SENTIMENT: 0, TOPIC_TRANSCRIPT: 0, TOPIC_HEALTH: 0},
        ),
        asr_lag_s=0.8,
        real_time_factor=0.31,
    )
    return health_message(stats)
