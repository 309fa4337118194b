"""The `qamoe.v1.frame` message (edge.publish.frame), the thumbnail encoder and sharer (edge.pipeline.frames), and
how qamoe-tap shows a frame: size bound, box normalisation, rate, schema validity, no base64 on a terminal."""

from __future__ import annotations

import base64
import itertools
import json

import cv2
import numpy as np
import pytest

from edge.features.visual import VISION_COLUMNS, VisualFrame
from edge.pipeline.frames import (
    MAX_RATE_HZ,
    FrameShareConfig,
    FrameShareConfigError,
    FrameSharer,
    encode_thumbnail,
    face_box,
)
from edge.publish import (
    TOPIC_FRAME,
    TOPICS,
    FaceBox,
    MessageError,
    Publisher,
    PublisherConfig,
    Received,
    Subscriber,
    SubscriberConfig,
    Thumbnail,
    WallClock,
    frame_message,
    is_valid,
    validate,
)
from edge.publish.frame import MAX_JPEG_BYTES
from edge.publish.guard import prefix_allowed
from edge.publish.recorder import free_endpoint
from edge.publish.render import render
from edge.publish.schema import load_schema
from edge.sources.types import ReadStatus, VideoFrame
from edge.vocab import NS

CLOCK = WallClock(offset_ns=1_700_000_000 * NS)


def picture(width: int = 640, height: int = 480, seed: int = 0) -> np.ndarray:
    """A smooth gradient with a little noise: compresses like a camera picture."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None, None]
    img = (x * 0.6 + y * 0.4 + rng.normal(0, 4, (height, width, 3))).clip(0, 255)
    return img.astype(np.uint8)


def thumb(**kw) -> Thumbnail:
    ok, buf = cv2.imencode(".jpg", picture(320, 240), [cv2.IMWRITE_JPEG_QUALITY, 70])
    assert ok
    return Thumbnail(buf.tobytes(), kw.get("width", 320), kw.get("height", 240), 70)


def envelope(body: dict, seq: int = 0) -> dict:
    return {"schema_version": "qamoe.v1", "topic": TOPIC_FRAME, "seq": seq, "sent": CLOCK.timepoint(5 * NS),
            **body}


def vision_step(present: bool, box=(0.5, 0.4, 0.25, 0.3), score: float = 0.9) -> VisualFrame:
    values = np.zeros(len(VISION_COLUMNS), np.float32)
    if present:
        values[:6] = (1.0, score, *box)
    return VisualFrame(0, present, values)


# ------------------------------------------------------------------------------------------------ the message
def test_frame_message_is_schema_valid_and_carries_the_jpeg() -> None:
    t = thumb()
    msg = frame_message(source_id="cam", thumbnail=t, captured_ns=3 * NS, face=FaceBox(0.5, 0.4, 0.2, 0.3, 0.9),
                        clock=CLOCK)
    assert msg.topic == TOPIC_FRAME
    payload = envelope(msg.body)
    validate(TOPIC_FRAME, payload)
    assert base64.b64decode(payload["jpeg"], validate=True) == t.jpeg
    assert payload["jpeg_bytes"] == len(t.jpeg) and (payload["width"], payload["height"]) == (320, 240)
    assert payload["captured"]["mono_ns"] == 3 * NS
    assert payload["face"] == {"cx": 0.5, "cy": 0.4, "w": 0.2, "h": 0.3, "score": pytest.approx(0.9)}
    assert payload["valid"] is True and payload["invalid_reason"] is None
    decoded = cv2.imdecode(np.frombuffer(base64.b64decode(payload["jpeg"]), np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (240, 320, 3)


def test_no_face_is_null_and_a_broken_box_makes_the_message_invalid() -> None:
    none = frame_message(source_id="c", thumbnail=thumb(), captured_ns=0, face=None, clock=CLOCK).body
    assert none["face"] is None and none["valid"] is True
    broken = frame_message(source_id="c", thumbnail=thumb(), captured_ns=0,
                           face=FaceBox(float("nan"), 0.5, 1.7, 0.2, 0.9), clock=CLOCK).body
    assert broken["face"] is None and broken["valid"] is False
    assert "face.cx" in broken["invalid_reason"] and "face.w" in broken["invalid_reason"]
    validate(TOPIC_FRAME, envelope(broken))
    json.dumps(broken, allow_nan=False)  # no NaN reaches the wire


def test_box_from_pixels_is_clipped_and_normalised() -> None:
    box = FaceBox.from_pixels(-20, 100, 300, 340, width=640, height=480, score=0.8)
    assert (box.cx, box.cy, box.w, box.h) == pytest.approx((150 / 640, 220 / 480, 300 / 640, 240 / 480))
    swapped = FaceBox.from_pixels(700, 500, 320, 240, width=640, height=480, score=0.8)  # corners swapped, out
    assert (swapped.cx, swapped.cy, swapped.w, swapped.h) == pytest.approx((0.75, 0.75, 0.5, 0.5))
    with pytest.raises(MessageError, match="frame size"):
        FaceBox.from_pixels(0, 0, 1, 1, width=0, height=480, score=0.5)


def test_box_of_a_vision_step() -> None:
    assert face_box(vision_step(False)) is None
    box = face_box(vision_step(True, (0.25, 0.75, 0.1, 0.2), score=0.7))
    assert box is not None
    assert (box.cx, box.cy, box.w, box.h, box.score) == pytest.approx((0.25, 0.75, 0.1, 0.2, 0.7))


def test_thumbnail_bounds_are_enforced() -> None:
    with pytest.raises(MessageError, match="not a JPEG"):
        Thumbnail(b"\x89PNG....", 10, 10, 70)
    with pytest.raises(MessageError, match="over 65536"):
        Thumbnail(b"\xff\xd8\xff" + bytes(MAX_JPEG_BYTES), 10, 10, 70)
    with pytest.raises(MessageError, match="sides"):
        thumb(width=5000)


def test_schema_refuses_what_the_builder_never_makes() -> None:
    good = envelope(frame_message(source_id="c", thumbnail=thumb(), captured_ns=0, face=None, clock=CLOCK).body)
    assert is_valid(TOPIC_FRAME, good)
    for field, value in (("jpeg", "not base64!"), ("jpeg", "A" * 90_000), ("jpeg_bytes", 70_000),
                         ("width", 0), ("face", {"cx": 0.5}), ("extra", 1)):
        assert not is_valid(TOPIC_FRAME, {**good, field: value}), field
    assert "qamoe.v1.frame" in load_schema("qamoe.v1.health")["$defs"]["topic_counts"]["properties"]


# ------------------------------------------------------------------------------------------------ the encoder
def test_thumbnail_is_small_and_keeps_the_aspect() -> None:
    cfg = FrameShareConfig()
    t = encode_thumbnail(picture(1280, 720), cfg)
    assert t is not None and (t.width, t.height) == (320, 180) and t.quality == 70
    assert len(t.jpeg) <= cfg.max_bytes
    small = encode_thumbnail(picture(160, 120), cfg)  # never enlarged
    assert small is not None and (small.width, small.height) == (160, 120)


def test_an_oversized_thumbnail_is_encoded_again_smaller_or_skipped() -> None:
    noise = np.random.default_rng(1).integers(0, 256, (480, 640, 3), dtype=np.uint8)  # incompressible
    first = encode_thumbnail(noise, FrameShareConfig(quality=95))
    assert first is not None and first.quality < 95 and len(first.jpeg) <= MAX_JPEG_BYTES
    assert encode_thumbnail(noise, FrameShareConfig(max_bytes=1024)) is None
    sharer = FrameSharer(FrameShareConfig(max_bytes=1024), "cam")
    frame = VideoFrame(ReadStatus.OK, noise, 0, 0)
    assert sharer.offer((frame, vision_step(True))) is None
    assert (sharer.shared, sharer.skipped) == (0, 1) and sharer.stats().dropped == 1


@pytest.mark.parametrize("rate", [0.0, -1.0, MAX_RATE_HZ + 0.1, float("nan"), float("inf")])
def test_rate_is_bounded(rate: float) -> None:
    with pytest.raises(FrameShareConfigError, match="--share-frames"):
        FrameShareConfig(rate_hz=rate)


def test_sharer_keeps_one_frame_per_period_of_capture_time() -> None:
    sharer = FrameSharer(FrameShareConfig(rate_hz=2.0), "cam")
    img = picture(320, 240)
    shared = []
    for i in range(75):  # 3 s of 25 fps capture, each frame analysed
        frame = VideoFrame(ReadStatus.OK, img, 1_000 * NS + i * NS // 25, i)
        msg = sharer.offer((frame, vision_step(True)))
        again = sharer.offer((frame, vision_step(True)))  # the same analysed frame offered twice: shared once
        assert again is None
        if msg is not None:
            shared.append(msg.body["captured"]["mono_ns"])
    assert len(shared) == 6 and sharer.shared == 6
    assert all(b - a >= NS // 2 for a, b in itertools.pairwise(shared))
    assert sharer.offer(None) is None


# ------------------------------------------------------------------------------------------- consumers of it
def test_tap_line_shows_size_and_box_never_the_picture() -> None:
    body = frame_message(source_id="c", thumbnail=thumb(), captured_ns=0, face=FaceBox(0.5, 0.4, 0.2, 0.3, 0.9),
                         clock=CLOCK).body
    payload = envelope(body, seq=7)
    line = render(Received(TOPIC_FRAME, payload))
    assert "#7" in line and "320x240" in line and "face at (0.50, 0.40)" in line
    assert payload["jpeg"][:40] not in line and len(line) < 200
    broken = render(Received(TOPIC_FRAME, {**payload, "face": "x", "width": None, "jpeg_bytes": "??"}))
    assert payload["jpeg"][:40] not in broken
    odd = render(Received(TOPIC_FRAME, {**payload, "captured": 1, "face": [1]}))
    assert payload["jpeg"][:20] not in odd


def test_topic_is_additive_and_subscribable() -> None:
    assert TOPICS[:3] == ("qamoe.v1.sentiment", "qamoe.v1.transcript", "qamoe.v1.health")
    assert TOPICS[3] == TOPIC_FRAME
    for prefix in (b"qamoe.v1.f", b"qamoe.v1.frame", b"qamoe.v1.", b""):
        assert prefix_allowed(prefix, 64)


def test_a_frame_crosses_a_real_socket() -> None:
    endpoint = free_endpoint()
    with (Publisher(PublisherConfig(endpoint=endpoint)) as pub,
          Subscriber(SubscriberConfig(endpoint=endpoint, topics=(TOPIC_FRAME,))) as sub):
        assert pub.wait_for_subscribers(1, 5.0)
        pub.publish(frame_message(source_id="c", thumbnail=thumb(), captured_ns=0, face=None))
        got = sub.receive(5.0)
    assert got is not None and got.topic == TOPIC_FRAME
    validate(TOPIC_FRAME, got.payload)
    assert pub.stats().published[TOPIC_FRAME] == 1


def test_a_recording_keeps_frames_and_the_export_ignores_them(tmp_path) -> None:
    from edge.publish.examples import example_sentiment
    from edge.record import JsonlRecordWriter, RecordConfig, export, read_recording
    from tests.unit.test_record import MONO0, WALL0, payload

    with JsonlRecordWriter(RecordConfig(tmp_path / "rec")) as writer:
        for i in range(3):
            t = i * NS // 2
            for msg in (example_sentiment(start_ns=MONO0 + t),
                        frame_message(source_id="cam0", thumbnail=thumb(), captured_ns=MONO0 + t, face=None)):
                writer.write(msg.topic, payload(msg, i), received_wall_ns=WALL0 + t, received_mono_ns=MONO0 + t)
    rec = read_recording(tmp_path / "rec")
    frames = rec.of("frame")
    assert len(frames) == 3 and all(base64.b64decode(r.payload["jpeg"]) == thumb().jpeg for r in frames)
    result = export(tmp_path / "rec", tmp_path / "w.csv", as_csv=True)
    assert result.rows == 3  # the sentiment windows only
    assert "jpeg" not in (tmp_path / "w.csv").read_text()
