"""The index of `seq` gaps per (source, topic): what a recording is missing, and where the publisher restarted.

Every topic numbers its messages 0, 1, 2 ... from the publisher's start (docs/messages.md, "Delivery"), so a
jump in `seq` is exactly the number of messages this recorder did not receive, and a `seq` that goes back is a
publisher that restarted. Messages before the first one received (the recorder joined late) are not counted as
missing: `first_seq` says where the recording begins. Thread-free and clock-free: the caller passes the times,
so the same index is built live by the writer and afterwards from the files (`GapIndex.of`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_EVENTS = 1000  # gaps (and restarts) kept per stream; beyond it only counted, so the index stays small
UNKNOWN_SOURCE = ""  # a payload without a string `source_id`


@dataclass
class StreamGaps:
    """What one (source, topic) stream looked like: seq range, counts, its gaps and restarts."""

    first_seq: int
    last_seq: int
    received: int = 1
    missing: int = 0
    gaps: list[dict[str, int]] = field(default_factory=list)
    restarts: list[dict[str, int]] = field(default_factory=list)
    events_dropped: int = 0  # gaps and restarts beyond MAX_EVENTS, counted only

    def observe(self, seq: int, received_wall_ns: int) -> bool:
        """Account for `seq`; True when it opened a gap or showed a restart (the index should be saved)."""
        self.received += 1
        previous, self.last_seq = self.last_seq, seq
        if seq == previous + 1:
            return False
        if seq > previous:
            self.missing += seq - previous - 1
            event = {"after_seq": previous, "next_seq": seq, "missing": seq - previous - 1}
            self._add(self.gaps, {**event, "received_wall_ns": received_wall_ns})
        else:  # the publisher restarted (or repeated itself): a new numbering begins
            self._add(self.restarts, {"from_seq": previous, "to_seq": seq, "received_wall_ns": received_wall_ns})
        return True

    def _add(self, events: list[dict[str, int]], event: dict[str, int]) -> None:
        if len(self.gaps) + len(self.restarts) < MAX_EVENTS:
            events.append(event)
        else:
            self.events_dropped += 1

    def to_json(self, source_id: str, topic: str) -> dict[str, Any]:
        return {
            "source_id": source_id,
            "topic": topic,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "received": self.received,
            "missing": self.missing,
            "gaps": list(self.gaps),
            "restarts": list(self.restarts),
            "events_dropped": self.events_dropped,
        }


class GapIndex:
    """Streams keyed by (source_id, topic). `observe` returns True when the index gained a gap, a restart or
    a stream (worth saving at once); messages without an integer `seq` are counted in `without_seq`."""

    def __init__(self) -> None:
        self.streams: dict[tuple[str, str], StreamGaps] = {}
        self.without_seq = 0

    def observe(self, topic: str, payload: Mapping[str, Any], received_wall_ns: int) -> bool:
        seq = payload.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            self.without_seq += 1
            return False
        source = payload.get("source_id")
        key = (source if isinstance(source, str) else UNKNOWN_SOURCE, topic)
        stream = self.streams.get(key)
        if stream is None:
            self.streams[key] = StreamGaps(first_seq=seq, last_seq=seq)
            return True
        return stream.observe(seq, received_wall_ns)

    @property
    def missing(self) -> int:
        """Messages missing over all streams."""
        return sum(s.missing for s in self.streams.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "streams": [self.streams[k].to_json(*k) for k in sorted(self.streams)],
            "missing": self.missing,
            "without_seq": self.without_seq,
        }

    @classmethod
    def of(cls, records: Iterable[tuple[str, Mapping[str, Any], int]]) -> GapIndex:
        """The index of (topic, payload, received_wall_ns) triples, e.g. a recording read back."""
        index = cls()
        for topic, payload, wall_ns in records:
            index.observe(topic, payload, wall_ns)
        return index
