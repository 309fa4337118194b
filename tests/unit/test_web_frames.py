"""qamoe-web's side of the frame view: a `qamoe.v1.frame` message reduced to a page update only when the server
was started with --frames; the newest frame in a snapshot; a slow viewer has at most one frame waiting."""

from __future__ import annotations

import asyncio
import base64

import cv2
import numpy as np
import pytest

from edge.cli.web import build_parser, make_configs
from edge.publish import TOPIC_FRAME, TOPIC_PREFIX, FaceBox, Thumbnail, WallClock, frame_message
from edge.vocab import NS
from edge.web.errors import ViewError
from edge.web.hub import Hub, Viewer
from edge.web.reduce import reduce_frame
from edge.web.slot import LatestSlot
from edge.web.state import PageState

CLOCK = WallClock(offset_ns=1_700_000_000 * NS)
BOX = FaceBox(0.5, 0.4, 0.2, 0.3, 0.9)


def frame_payload(seq: int = 0, face: FaceBox | None = BOX) -> dict:
    ok, buf = cv2.imencode(".jpg", np.full((60, 80, 3), 128, np.uint8))
    assert ok
    body = frame_message(source_id="cam", thumbnail=Thumbnail(buf.tobytes(), 80, 60, 70),
                         captured_ns=(2 + seq) * NS, face=face, clock=CLOCK).body
    return {"schema_version": "qamoe.v1", "topic": TOPIC_FRAME, "seq": seq, "sent": CLOCK.timepoint(9 * NS), **body}


def test_frame_reduces_to_jpeg_size_and_box() -> None:
    p = frame_payload(seq=3)
    u = reduce_frame(p)
    assert u["kind"] == "frame" and u["seq"] == 3 and u["t"] == 5.0
    assert (u["width"], u["height"]) == (80, 60) and u["jpeg"] == p["jpeg"]
    assert u["face"] == {"cx": 0.5, "cy": 0.4, "w": 0.2, "h": 0.3, "score": pytest.approx(0.9)}
    assert reduce_frame(frame_payload(face=None))["face"] is None


@pytest.mark.parametrize(
    ("field", "value"),
    [("jpeg", None), ("jpeg", "@@@@"), ("jpeg", base64.b64encode(b"\x89PNG\r\n").decode()), ("jpeg", "A" * 90_000),
     ("width", 0), ("height", "60"), ("captured", {"mono_ns": -1})],
)
def test_a_frame_that_is_not_one_is_refused(field: str, value: object) -> None:
    with pytest.raises(ViewError):
        reduce_frame({**frame_payload(), field: value})


def test_a_box_out_of_range_is_not_drawn() -> None:
    p = frame_payload()
    for face in ({"cx": 1.5, "cy": 0.4, "w": 0.2, "h": 0.3, "score": 0.9}, {"cx": 0.5}, "box", [0.1]):
        assert reduce_frame({**p, "face": face})["face"] is None


def test_without_frames_the_state_drops_frames_and_never_holds_one() -> None:
    state = PageState()
    assert state.apply(TOPIC_FRAME, frame_payload()) is None
    snap = state.snapshot()
    assert snap["frames"] is False and snap["frame"] is None and state.frames_refused == 1
    assert "jpeg" not in str(snap)


def test_with_frames_the_snapshot_holds_the_newest_frame() -> None:
    state = PageState(frames=True)
    assert state.apply(TOPIC_FRAME, frame_payload(seq=0))["kind"] == "frame"
    state.apply(TOPIC_FRAME, frame_payload(seq=1))
    assert state.apply(TOPIC_FRAME, {**frame_payload(seq=2), "jpeg": "!!"}) is None  # skipped, counted
    snap = state.snapshot()
    assert snap["frames"] is True and snap["frame"]["seq"] == 1 and state.skipped == 1


def test_the_cli_subscribes_to_frames_only_with_the_flag() -> None:
    web, sub, _ = make_configs(build_parser().parse_args([]))
    assert web.frames is False and TOPIC_FRAME not in sub.topics and TOPIC_PREFIX not in sub.topics
    assert not any(TOPIC_FRAME.startswith(t) for t in sub.topics)
    web, sub, _ = make_configs(build_parser().parse_args(["--frames"]))
    assert web.frames is True and any(TOPIC_FRAME.startswith(t) for t in sub.topics)


def test_slot_keeps_only_the_newest_frame_waiting() -> None:
    slot: LatestSlot[tuple[str, str]] = LatestSlot(4)
    def is_frame(item: tuple[str, str]) -> bool:
        return item[0] == "frame"

    slot.offer(("health", "h1"))
    for i in range(10):
        slot.offer(("frame", f"f{i}"), replaces=is_frame)
    slot.offer(("sentiment", "s1"))
    taken = slot.take()
    assert taken is not None and not taken.resync
    assert taken.items == (("health", "h1"), ("frame", "f9"), ("sentiment", "s1"))
    assert slot.dropped == 9


def test_hub_sends_a_slow_viewer_the_newest_frame_not_a_queue() -> None:
    async def scenario() -> tuple[list[tuple[str, str]], int]:
        hub = Hub(PageState(frames=True), max_viewers=4, backlog=4)
        viewer = Viewer(hub.backlog)
        hub.viewers.add(viewer)  # a viewer whose sender is busy: nothing is taken while frames arrive
        for seq in range(20):
            update = hub.state.apply(TOPIC_FRAME, frame_payload(seq=seq))
            assert update is not None
            hub.broadcast(update)
        taken = viewer.slot.take()
        assert taken is not None
        return list(taken.items), viewer.slot.dropped

    items, dropped = asyncio.run(scenario())
    assert len(items) == 1 and '"seq":19' in items[0][1] and dropped == 19


def test_health_update_reports_frames_refused() -> None:
    hub = Hub(PageState(), max_viewers=1)
    hub.state.apply(TOPIC_FRAME, frame_payload())
    assert hub.stats()["frames_refused"] == 1
