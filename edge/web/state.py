"""The page state: what a browser that connects now is sent first (a snapshot), kept up to date message by
message. Thread-free: the server applies messages and asks for snapshots on its one event loop."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping
from typing import Any

from edge.publish.wire import TOPIC_FRAME
from edge.web.errors import ViewError
from edge.web.reduce import reduce_message

log = logging.getLogger(__name__)


def trace_point(update: Mapping[str, Any]) -> list[Any]:
    """A sentiment update as one compact trace point: [t, valence, sd, polarity]."""
    return [update["t"], update["valence"], update["sd"], update["polarity"]]


class PageState:
    """`apply(topic, payload)` -> the update to send (None when there is nothing to show); `snapshot()` the
    whole state. Keeps the last `trace_points` sentiment points, the last `transcript_lines` transcript
    messages, and the latest sentiment and health messages, and with `frames` (qamoe-web --frames) the latest
    camera frame; without it frame messages are dropped here and counted (`frames_refused`): none reaches a
    browser, whatever the node publishes."""

    def __init__(self, trace_points: int = 600, transcript_lines: int = 100, *, frames: bool = False) -> None:
        self.trace: deque[list[Any]] = deque(maxlen=trace_points)
        self.transcript: deque[dict[str, Any]] = deque(maxlen=transcript_lines)
        self.sentiment: dict[str, Any] | None = None
        self.health: dict[str, Any] | None = None
        self.frames = frames
        self.frame: dict[str, Any] | None = None
        self.frames_refused = 0
        self.applied = 0
        self.skipped = 0  # messages the page could not show (ViewError); logged at debug

    def apply(self, topic: str, payload: Mapping[str, Any]) -> dict[str, Any] | None:
        if topic == TOPIC_FRAME and not self.frames:
            self.frames_refused += 1
            return None
        try:
            update = reduce_message(topic, payload)
        except ViewError as exc:
            self.skipped += 1
            log.debug("skipped a %s message: %s", topic, exc)
            return None
        if update is None:
            return None
        self.applied += 1
        kind = update["kind"]
        if kind == "sentiment":
            self.sentiment = update
            self.trace.append(trace_point(update))
        elif kind == "transcript":
            self.transcript.append(update)
        elif kind == "frame":
            self.frame = update
        else:
            self.health = update
        return update

    def snapshot(self) -> dict[str, Any]:
        return {
            "kind": "snapshot",
            "trace": list(self.trace),
            "sentiment": self.sentiment,
            "transcript": list(self.transcript),
            "health": self.health,
            "frames": self.frames,  # whether this server shows frames at all (the page says how to turn it on)
            "frame": self.frame,
        }
