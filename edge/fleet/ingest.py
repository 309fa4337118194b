"""`Ingest`: turns each message read from the nodes (edge.fleet.zmqread) into an `Outgoing` one (subject,
de-duplication id), counts `seq` gaps and hands it to the bounded buffer. Thread-safe; nothing here touches
NATS or ZeroMQ."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

from edge.fleet.config import BridgeConfig
from edge.fleet.subjects import msg_id_from, msg_id_prefix, sanitise_source, subject_for, topic_token
from edge.fleet.tracking import IN_ORDER, BoundedBuffer, SeqTracker, SeqVerdict
from edge.publish.subscriber import Received

log = logging.getLogger(__name__)
ROUTE_CACHE = 10_000  # (topic, source_id) pairs whose subject is remembered


class Outgoing(NamedTuple):
    """One message on its way to JetStream. `first`: the first this bridge has seen of its (source, topic).
    (A NamedTuple: one is made per bridged message, and a tuple costs a fraction of a frozen dataclass.)"""

    subject: str
    data: bytes
    msg_id: str
    key: tuple[str, str]
    seq: int
    sent_mono_ns: int | None
    first: bool
    received_ns: int


class _Route(NamedTuple):
    """What a (topic, source_id) pair maps to, worked out once: the key, the subject, the id's prefix."""

    key: tuple[str, str]
    subject: str
    id_prefix: str


class Ingest:
    """Received ZeroMQ messages -> the buffer. Counts what cannot be bridged (`rejected`: no usable source_id,
    topic or seq) and gaps in `seq` per (source, topic) (`tracker.lost`)."""

    def __init__(self, cfg: BridgeConfig, buffer: BoundedBuffer[Outgoing], wake: Callable[[], None]) -> None:
        self.cfg = cfg
        self.buffer = buffer
        self.tracker = SeqTracker()
        self.received = 0
        self.rejected = 0
        self.undecodable = 0
        self._wake = wake
        self._lock = threading.Lock()
        self._warned: set[str] = set()
        self._routes: dict[tuple[str, object], _Route] = {}

    def take_many(self, got: list[tuple[Received, bytes]], received_ns: int) -> None:
        """Messages read together (one lock for the buffer, one wake)."""
        out = [o for msg, data in got if (o := self._outgoing(msg.topic, msg.payload, data, received_ns))]
        if out:
            self.buffer.push_many(out)
            self._wake()

    def _route(self, topic: str, source_id: object) -> _Route | None:
        """The subject and id prefix of (topic, source_id), cached; None when either is not usable."""
        route = self._routes.get((topic, source_id))
        if route is not None:
            return route
        short = topic_token(topic)
        source = self.cfg.source_id or sanitise_source(source_id)
        if short is None or source is None:
            return None
        if len(self._routes) >= ROUTE_CACHE:  # many sources (or a hostile one): start again, stay bounded
            self._routes.clear()
        route = _Route((source, short), subject_for(short, self.cfg.site, source),
                       msg_id_prefix(self.cfg.site, source, short))
        self._routes[(topic, source_id)] = route
        return route

    def _outgoing(self, topic: str, p: dict[str, Any], data: bytes, received_ns: int) -> Outgoing | None:
        route = self._route(topic, p.get("source_id"))
        seq = p.get("seq")
        if route is None or type(seq) is not int or seq < 0:
            self._reject(f"topic {topic!r:.60}, source_id {p.get('source_id')!r:.60}, seq {seq!r:.20}")
            return None
        sent = p.get("sent")
        mono = sent.get("mono_ns") if type(sent) is dict else None
        mono = mono if type(mono) is int else None
        key = route.key
        with self._lock:
            self.received += 1
            first = not self.tracker.known(key)
            verdict = self.tracker.observe(key, seq)
        if verdict is not IN_ORDER:
            self._log_verdict(key, seq, verdict)
        return Outgoing(route.subject, data, msg_id_from(route.id_prefix, seq, mono), key, seq, mono, first,
                        received_ns)

    @staticmethod
    def _log_verdict(key: tuple[str, str], seq: int, verdict: SeqVerdict) -> None:
        if verdict.lost:
            log.warning("%s/%s: %d message(s) lost upstream before seq %d", *key, verdict.lost, seq)
        elif verdict.restart:
            log.info("%s/%s: seq went back to %d: the node restarted", *key, seq)

    def count_undecodable(self) -> None:
        with self._lock:
            self.undecodable += 1

    def _reject(self, what: str) -> None:
        with self._lock:
            self.rejected += 1
        if what not in self._warned and len(self._warned) < 100:
            self._warned.add(what)
            log.warning("not bridged (no usable subject token; --source-id NAME sets one): %s", what)

    def resume(self, key: tuple[str, str], stored_seq: int, first_seq: int) -> int:
        """An earlier run stored up to `stored_seq` of `key`, and this run's first message is `first_seq`:
        count what came between as lost upstream. Returns that count."""
        gap = first_seq - stored_seq - 1
        if gap <= 0:
            return 0
        with self._lock:
            self.tracker.lost += gap
        log.warning("%s/%s: %d message(s) passed while no bridge read them (seq %d-%d)", *key, gap,
                    stored_seq + 1, first_seq - 1)
        return gap
