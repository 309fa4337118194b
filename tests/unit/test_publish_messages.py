"""Message constructors, the JSON Schemas and the terminal escaping: no sockets."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest

from edge.publish import (
    SCHEMA_VERSION,
    TOPIC_HEALTH,
    TOPIC_SENTIMENT,
    TOPIC_TRANSCRIPT,
    Estimate,
    Message,
    MessageError,
    SchemaValidationError,
    WindowInfo,
    is_valid,
    load_schema,
    polarity,
    sentiment_message,
    terminal_safe,
    validate,
)
from edge.publish.examples import (
    EXAMPLE_CLOCK,
    EXAMPLE_MODEL,
    T0_NS,
    example_health,
    example_sentiment,
    example_transcript,
)
from edge.publish.render import render
from edge.publish.subscriber import Received
from edge.publish.wire import clean_text


def wire(message: Message, seq: int = 0) -> dict:
    """What Publisher.publish puts on the wire, without a socket."""
    sent = EXAMPLE_CLOCK.timepoint(T0_NS)
    payload = {
        "schema_version": SCHEMA_VERSION,
        "topic": message.topic,
        "seq": seq,
        "sent": sent,
        **message.body,
    }
    return json.loads(json.dumps(payload, allow_nan=False))


def test_example_messages_validate_against_their_schemas() -> None:
    for message in (example_sentiment(), example_transcript(), example_health()):
        validate(message.topic, wire(message))
        assert message.body["valid"] is True


def test_schemas_are_draft_2020_12_and_closed_except_documented_maps() -> None:
    for topic in (TOPIC_SENTIMENT, TOPIC_TRANSCRIPT, TOPIC_HEALTH):
        schema = load_schema(topic)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["additionalProperties"] is False
    sentiment = wire(example_sentiment())
    sentiment["surprise"] = 1
    assert not is_valid(TOPIC_SENTIMENT, sentiment)
    health = wire(example_health())
    health["fps"]["thermal_camera"] = 9.0  # documented as additive-only: a new source name is fine
    validate(TOPIC_HEALTH, health)


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda p: p.pop("valence"), "valence"),
        (lambda p: p.__setitem__("valence", "1.2"), "valence"),
        (lambda p: p.__setitem__("seq", -1), "seq"),
        (lambda p: p["modalities"].pop("audio"), "modalities"),
        (lambda p: p["modalities"]["text"].__setitem__("reliability", 1.5), "modalities/text/reliability"),
        (lambda p: p.__setitem__("schema_version", "qamoe.v2"), "schema_version"),
        (lambda p: p.__setitem__("invalid_reason", "x"), "invalid_reason"),
        (lambda p: p["window"]["start"].pop("mono_ns"), "window/start"),
    ],
)
def test_schema_rejects_malformed_sentiment(mutate, where: str) -> None:
    payload = wire(example_sentiment())
    mutate(payload)
    with pytest.raises(SchemaValidationError, match=where.split("/")[0]):
        validate(TOPIC_SENTIMENT, payload)


def test_schema_rejects_malformed_transcript_and_health() -> None:
    transcript = wire(example_transcript())
    transcript["words"][0]["confidence"] = "high"
    with pytest.raises(SchemaValidationError, match="words/0/confidence"):
        validate(TOPIC_TRANSCRIPT, transcript)
    health = wire(example_health())
    health["devices"]["camera"]["state"] = "on fire"
    with pytest.raises(SchemaValidationError, match="devices/camera/state"):
        validate(TOPIC_HEALTH, health)


def test_nan_valence_becomes_null_and_marks_the_window_invalid() -> None:
    body = example_sentiment(valence=math.nan).body
    assert body["valence"] is None and body["polarity"] is None
    assert body["valid"] is False and "valence" in body["invalid_reason"]
    validate(TOPIC_SENTIMENT, wire(example_sentiment(valence=math.nan)))


def test_inf_anywhere_and_missing_estimate_are_invalid_not_crashes() -> None:
    window = WindowInfo("cam0", T0_NS, T0_NS + 10, {"text": True, "audio": False, "vision": True}, "hi")
    estimate = Estimate(
        np.float32(0.2), np.inf, {"text": 0.5, "audio": np.nan, "vision": 1.0000001}, np.array([0.5, np.inf])
    )
    body = sentiment_message(window, estimate, EXAMPLE_MODEL, latency_ms={"inference": -1.0}).body
    assert body["predictive_variance"] is None and body["router_weights"] is None
    assert body["modalities"]["audio"] == {"present": False, "reliability": None}
    assert body["modalities"]["vision"]["reliability"] == 1.0  # an ulp over 1 is clamped, not rejected
    assert body["latency_ms"] == {"inference": None}
    assert body["valid"] is False
    for field in ("predictive_variance", "reliability.audio", "router_weights[1]", "latency_ms.inference"):
        assert field in body["invalid_reason"]
    failed = sentiment_message(
        window, None, EXAMPLE_MODEL, invalid_reason="inference raised RuntimeError"
    ).body
    assert failed["valid"] is False and failed["invalid_reason"] == "inference raised RuntimeError"
    for payload in (body, failed):
        validate(TOPIC_SENTIMENT, wire(Message(TOPIC_SENTIMENT, payload)))


def test_constructor_rejects_caller_bugs_with_a_named_fix() -> None:
    with pytest.raises(MessageError, match="presence lacks modalities"):
        sentiment_message(WindowInfo("cam0", 0, 1, {"text": True}), None, EXAMPLE_MODEL)
    with pytest.raises(MessageError, match="ends .* before it starts"):
        sentiment_message(WindowInfo("cam0", 5, 1, {"text": 1, "audio": 1, "vision": 1}), None, EXAMPLE_MODEL)
    with pytest.raises(MessageError, match="nanoseconds"):
        EXAMPLE_CLOCK.timepoint(1.5)  # type: ignore[arg-type]
    with pytest.raises(MessageError, match="unknown topic"):
        Message("qamoe.v1.gossip", {})


@pytest.mark.parametrize(
    ("valence", "expected"),
    [
        (-3.0, "negative"),
        (-0.5, "negative"),
        (-0.49, "neutral"),
        (0.0, "neutral"),
        (0.49, "neutral"),
        (0.5, "positive"),
    ],
)
def test_polarity_uses_the_documented_neutral_band(valence: float, expected: str) -> None:
    assert polarity(valence) == expected


def test_untrusted_text_is_kept_but_always_encodable() -> None:
    # A lone surrogate (a non-UTF-8 device name via os.fsdecode) cannot break encoding.
    assert clean_text("a\udcffb") == "a\ufffdb"
    assert clean_text(b"caf\xe9") == "caf\ufffd"
    assert len(clean_text("x" * 10_000)) == 4096
    body = example_sentiment(transcript='he said "\x1b[2J" \\ then\n left').body
    assert body["transcript"] == 'he said "\x1b[2J" \\ then\n left'  # faithful; JSON escapes it on the wire
    encoded = json.dumps(wire(Message(TOPIC_SENTIMENT, body)), ensure_ascii=True)
    assert "\x1b" not in encoded and "\n" not in encoded
    assert json.loads(encoded)["transcript"] == body["transcript"]


def test_terminal_safe_neutralises_escapes_and_cannot_be_forged() -> None:
    assert terminal_safe("hello") == "hello"
    shown = terminal_safe("x\x1b[31mred\x1b]0;title\x07\r\n\u202eevil\x9b2J\\x1b")
    assert shown.isprintable()
    assert shown == "x\\x1b[31mred\\x1b]0;title\\x07\\x0d\\x0a\\u202eevil\\x9b2J\\\\x1b"
    assert terminal_safe("日本語 ok") == "日本語 ok"
    assert terminal_safe("abcdef", limit=4) == "abc…"


def test_render_escapes_and_survives_foreign_payloads() -> None:
    line = render(Received(TOPIC_SENTIMENT, wire(example_sentiment(transcript="\x1b[31mred"))))
    assert "\x1b" not in line and "\\x1b[31mred" in line and "+1.20" in line
    health = wire(example_health(device_name="cam\x1b]0;pwned\x07"))
    health["devices"]["\x1bkey"] = health["devices"].pop("camera")
    assert render(Received(TOPIC_HEALTH, health)).isprintable()
    junk = copy.deepcopy(wire(example_transcript()))
    junk["words"] = "not a list \x1b"
    for payload in (junk, {"seq": "x", "sent": 5}, {}):
        assert render(Received(TOPIC_TRANSCRIPT, payload)).isprintable()


def test_the_examples_in_docs_messages_md_validate(repo_root) -> None:
    text = (repo_root / "docs" / "messages.md").read_text(encoding="utf-8")
    blocks = [b.split("```", 1)[0] for b in text.split("```json\n")[1:]]
    assert len(blocks) == 4
    for block in blocks:
        payload = json.loads(block)
        validate(payload["topic"], payload)
