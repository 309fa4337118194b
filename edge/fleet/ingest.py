"""The ZeroMQ side of the bridge: a reader thread per node endpoint, and `Ingest`, which turns each received
message into an `Outgoing` one (subject, de-duplication id), counts `seq` gaps and hands it to the bounded
buffer. Thread-safe; nothing here touches NATS."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge.fleet.config import BridgeConfig
from edge.fleet.subjects import msg_id, sanitise_source, subject_for, topic_token
from edge.fleet.tracking import BoundedBuffer, SeqTracker
from edge.publish.errors import MessageError, PublishError
from edge.publish.subscriber import Received, Subscriber, SubscriberConfig
from edge.publish.wire import TOPIC_PREFIX

log = logging.getLogger(__name__)
POLL_S = 0.1  # how often a reader looks at its stop flag
RECEIVE_HWM = 10_000  # messages ZeroMQ may hold for the bridge before the node's socket drops for it


@dataclass(frozen=True)
class Outgoing:
    """One message on its way to JetStream. `first`: the first this bridge has seen of its (source, topic)."""

    subject: str
    data: bytes
    msg_id: str
    key: tuple[str, str]
    seq: int
    sent_mono_ns: int | None
    first: bool
    received_ns: int


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

    def take(self, msg: Received, data: bytes, received_ns: int) -> None:
        out = self._outgoing(msg.topic, msg.payload, data, received_ns)
        if out is None:
            return
        self.buffer.push(out)
        self._wake()

    def _outgoing(self, topic: str, p: dict[str, Any], data: bytes, received_ns: int) -> Outgoing | None:
        short = topic_token(topic)
        source = self.cfg.source_id or sanitise_source(p.get("source_id"))
        seq = p.get("seq")
        if short is None or source is None or not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            self._reject(f"topic {topic!r:.60}, source_id {p.get('source_id')!r:.60}, seq {seq!r:.20}")
            return None
        sent = p.get("sent")
        mono = sent.get("mono_ns") if isinstance(sent, dict) else None
        mono = mono if isinstance(mono, int) and not isinstance(mono, bool) else None
        key = (source, short)
        with self._lock:
            self.received += 1
            first = not self.tracker.known(key)
            verdict = self.tracker.observe(key, seq)
        if verdict.lost:
            log.warning("%s/%s: %d message(s) lost upstream before seq %d", source, short, verdict.lost, seq)
        elif verdict.restart:
            log.info("%s/%s: seq went back to %d: the node restarted", source, short, seq)
        return Outgoing(
            subject=subject_for(short, self.cfg.site, source), data=data,
            msg_id=msg_id(self.cfg.site, source, short, seq, mono), key=key, seq=seq, sent_mono_ns=mono,
            first=first, received_ns=received_ns,
        )

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


class ZmqReader:
    """A thread reading the nodes' ZeroMQ endpoints (one SUB socket connected to all of them, fair-queued)
    into `Ingest`; ZeroMQ reconnects to each node by itself (capped backoff: BridgeConfig.zmq_reconnect_ms
    doubling to zmq_reconnect_max_ms)."""

    def __init__(self, endpoints: tuple[str, ...], cfg: BridgeConfig, ingest: Ingest) -> None:
        self.endpoint = ", ".join(endpoints)
        self._ingest = ingest
        self._stop = threading.Event()
        self._subscriber = Subscriber(SubscriberConfig(
            endpoint=endpoints[0], topics=(TOPIC_PREFIX,), receive_hwm=RECEIVE_HWM,
            reconnect_ivl_ms=cfg.zmq_reconnect_ms, reconnect_ivl_max_ms=cfg.zmq_reconnect_max_ms,
            curve_server_public_key_file=cfg.curve_server_public_key_file,
            curve_client_secret_key_file=cfg.curve_client_secret_key_file,
        ))
        try:
            for endpoint in endpoints[1:]:
                self._subscriber.connect(endpoint)
        except BaseException:
            self._subscriber.close()
            raise
        self._thread = threading.Thread(target=self._run, name="bridge-zmq", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._read_once()
            while self._read_once():  # asked to stop: take what has already arrived, until a quiet poll
                pass
        finally:
            self._subscriber.close()

    def _read_once(self) -> bool:
        """Read one message (or wait POLL_S for one); False when none came."""
        try:
            got = self._subscriber.receive_raw(POLL_S)
        except MessageError as exc:
            self._ingest.count_undecodable()
            log.debug("undecodable message from %s: %s", self.endpoint, exc)
            return True
        except PublishError as exc:  # the socket itself failed: say so, and keep trying
            log.error("reading %s: %s", self.endpoint, exc)
            time.sleep(POLL_S)
            return False
        if got is None:
            return False
        self._ingest.take(got[0], got[1], time.monotonic_ns())
        return True

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout_s: float = 2.0) -> None:
        self._thread.join(timeout_s)
