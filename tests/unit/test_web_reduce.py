"""Message -> page state (edge.web.reduce, edge.web.state): real messages from edge.publish's constructors,
hostile text kept as visible text, bad numbers and malformed payloads never reaching the page."""

from __future__ import annotations

import json
import math

from edge.publish import (
    SCHEMA_VERSION,
    DeviceStatus,
    Estimate,
    HealthStats,
    Message,
    ModelInfo,
    PublishStats,
    QueueStats,
    WallClock,
    WindowInfo,
    health_message,
    sentiment_message,
    transcript_message,
    validate,
)
from edge.vocab import NS, Word
from edge.web.hub import dumps
from edge.web.reduce import reduce_message, text
from edge.web.state import PageState

MODEL = ModelInfo("ort-cpu", "qamoe", "0" * 64, "1" * 64)
CLOCK = WallClock(offset_ns=1_767_225_600 * NS)


def wire(msg: Message, seq: int = 0) -> dict:
    """The payload as a subscriber receives it: the envelope Publisher adds (docs/messages.md), checked
    against the topic's schema, through JSON."""
    payload = {
        "schema_version": SCHEMA_VERSION,
        "topic": msg.topic,
        "seq": seq,
        "sent": CLOCK.timepoint(5 * NS + seq),
        **msg.body,
    }
    validate(msg.topic, payload)
    return json.loads(json.dumps(payload))


HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)>\x1b[2J\u202eevil\x00\n&amp;"


def sentiment(i: int, valence: float = 1.2, variance: float = 0.25, vision: bool = True) -> tuple[str, dict]:
    window = WindowInfo(
        "cam0", i * NS // 2, i * NS // 2 + 4 * NS, {"text": True, "audio": True, "vision": vision}
    )
    est = Estimate(
        valence, variance, {"text": 0.8, "audio": 0.6, "vision": 0.9 if vision else 0.0003}, [0.5, 0.5]
    )
    msg = sentiment_message(window, est, MODEL, latency_ms={"total": 10.0})
    return msg.topic, wire(msg, i)


def test_sentiment_reduces_to_trace_and_bars() -> None:
    topic, payload = sentiment(3, vision=False)
    u = reduce_message(topic, payload)
    assert u is not None and u["kind"] == "sentiment" and u["valid"]
    assert u["valence"] == 1.2 and math.isclose(u["sd"], 0.5) and u["polarity"] == "positive"
    assert u["t"] == payload["window"]["end"]["mono_ns"] / 1e9
    assert u["modalities"] == {
        "text": {"present": True, "reliability": 0.8},
        "audio": {"present": True, "reliability": 0.6},
        "vision": {"present": False, "reliability": 0.0003},
    }
    assert u["backend"] == "ort-cpu" and u["source"] == "cam0"


def test_invalid_and_out_of_range_numbers_become_null() -> None:
    topic, payload = sentiment(1, valence=float("nan"))
    u = reduce_message(topic, payload)
    assert u is not None and u["valence"] is None and not u["valid"] and u["invalid_reason"]
    payload = {
        **payload,
        "valence": 99,
        "predictive_variance": -1,
        "polarity": "<b>",
        "modalities": {"text": {"present": "yes", "reliability": True}},
    }
    u = reduce_message(topic, payload)
    assert u is not None and u["valence"] is None and u["sd"] is None and u["polarity"] is None
    assert u["modalities"]["text"] == {"present": False, "reliability": None}
    assert u["modalities"]["vision"] == {"present": False, "reliability": None}
    dumps(u)  # strict JSON: would raise on NaN/Infinity


def test_hostile_transcript_stays_text_with_controls_made_visible() -> None:
    msg = transcript_message(source_id="cam0", words=[Word(HOSTILE, 0, NS)])
    u = reduce_message(msg.topic, wire(msg))
    assert u is not None
    assert u["text"] == (
        "<script>alert(1)</script><img src=x onerror=alert(2)>\\x1b[2J\\u202eevil\\x00\\x0a&amp;"
    )
    assert all(ch.isprintable() for ch in u["text"])
    assert (
        text(123) == "" and text("a\\b") == "a\\\\b"
    )  # non-text dropped; a backslash cannot forge an escape


def test_health_devices_queues_and_asr_counters() -> None:
    stats = HealthStats(
        source_id="cam0",
        uptime_s=12.0,
        fps={"camera": 25.0, "microphone": None},
        queues={
            "asr_audio": QueueStats("drop_oldest", 1, 8, 3),
            "windows": QueueStats("skip_oldest", 0, 8, 0),
        },
        devices={
            "camera": DeviceStatus("ok", name=HOSTILE),
            "microphone": DeviceStatus("absent", detail="gone"),
        },
        messages=PublishStats(published={"qamoe.v1.sentiment": 5}, dropped={"qamoe.v1.sentiment": 2}),
        asr_lag_s=0.4,
        real_time_factor=0.3,
    )
    payload = {**wire(health_message(stats)), "asr_decodes": 7, "asr_note": "x"}
    u = reduce_message("qamoe.v1.health", payload)
    assert u is not None and u["kind"] == "health"
    assert u["uptime_s"] == 12.0 and u["rtf"] == 0.3 and u["asr_lag_s"] == 0.4
    assert u["asr"] == {"asr_decodes": 7.0}  # additive ASR counters pass through; non-numbers do not
    assert [d["role"] for d in u["devices"]] == ["camera", "microphone"]
    assert u["devices"][0]["name"].startswith("<script>") and "\x1b" not in u["devices"][0]["name"]
    assert u["queues"][0] == {
        "name": "asr_audio",
        "policy": "drop_oldest",
        "depth": 1,
        "capacity": 8,
        "dropped": 3,
    }
    assert u["fps"] == {"camera": 25.0, "microphone": None} and u["messages_dropped"] == 2


def test_page_state_keeps_bounded_history_and_skips_malformed() -> None:
    state = PageState(trace_points=10, transcript_lines=3)
    for i in range(25):
        state.apply(*sentiment(i, valence=(i % 7) - 3.0))
    for i in range(5):
        msg = transcript_message(source_id="cam0", words=[Word(f"w{i}", i * NS, i * NS + 1)])
        state.apply(msg.topic, wire(msg, i))
    assert state.apply("qamoe.v1.sentiment", {"window": "nope", "modalities": {}}) is None
    assert state.apply("qamoe.v1.transcript", {"sent": {"mono_ns": -1}}) is None
    assert state.apply("qamoe.v1.other", {"x": 1}) is None  # a newer topic: ignored, not an error
    assert state.skipped == 2 and state.applied == 30
    snap = state.snapshot()
    assert snap["kind"] == "snapshot" and len(snap["trace"]) == 10
    assert [p[1] for p in snap["trace"]] == [float((i % 7) - 3) for i in range(15, 25)]
    assert [t["text"] for t in snap["transcript"]] == ["w2", "w3", "w4"]
    assert snap["sentiment"]["seq"] == 24 and snap["health"] is None
    dumps(snap)
