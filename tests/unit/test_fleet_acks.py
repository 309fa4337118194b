"""The bridge's own JetStream ack accounting (edge.fleet.acks.AckWindow) and the ZeroMQ-side bookkeeping it
feeds on (edge.fleet.ingest.Ingest), against a stand-in for nats-py's client that records the protocol bytes
the bridge writes. No broker needed: the broker-backed tests are tests/integration/test_fleet_bridge.py and
tests/faults/test_fleet_faults.py."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from edge.fleet import acks as acks_module
from edge.fleet.acks import AckWindow
from edge.fleet.config import BridgeConfig
from edge.fleet.ingest import Ingest, Outgoing
from edge.fleet.subjects import msg_id, sanitise_source, subject_for
from edge.fleet.tracking import BoundedBuffer
from edge.publish.subscriber import Received

STORED = b'{"stream":"QAMOE", "seq":7}'  # as nats-server 2.9 writes them
ALREADY = b'{"stream":"QAMOE", "seq":7,"duplicate": true}'
REFUSED = b'{"error":{"code":503,"err_code":10077,"description":"resource limits exceeded"}}'


@dataclass
class FakeMsg:
    subject: str
    data: bytes
    headers: dict[str, str] | None = None


@dataclass
class FakeClient:
    """What AckWindow uses of nats-py's Client; keeps the commands it is given."""

    max_payload: int = 1 << 20
    is_connected: bool = True
    is_closed: bool = False
    commands: list[bytes] = field(default_factory=list)
    flushes: int = 0
    stats: dict[str, int] = field(default_factory=lambda: {"out_msgs": 0, "out_bytes": 0})
    inboxes: int = 0

    def new_inbox(self) -> str:
        self.inboxes += 1
        return f"_INBOX.test{self.inboxes}"

    async def subscribe(self, subject: str, **_: Any) -> object:
        assert subject.endswith(".*")
        return object()

    async def _send_command(self, command: bytes) -> None:
        self.commands.append(command)

    async def _flush_pending(self) -> None:
        self.flushes += 1

    async def publish(self, subject: str, data: bytes, reply: str, headers: dict[str, str]) -> None:
        header = b"NATS/1.0\r\n" + b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items()) + b"\r\n"
        self.commands.append(b"HPUB %s %s %d %d\r\n%s%s\r\n" % (
            subject.encode(), reply.encode(), len(header), len(header) + len(data), header, data))


def message(seq: int, source: str = "cam0", size: int = 40) -> Outgoing:
    return Outgoing(subject_for("sentiment", "lab", source), b"x" * size,
                    msg_id("lab", source, "sentiment", seq, 1000 + seq), (source, "sentiment"), seq, 1000 + seq,
                    seq == 0, 0)


def parse_hpub(command: bytes) -> tuple[str, str, str, bytes]:
    """(subject, reply, Nats-Msg-Id, payload) of one HPUB command, checking its declared sizes."""
    line, rest = command.split(b"\r\n", 1)
    op, subject, reply, header_len, total = line.split(b" ")
    assert op == b"HPUB" and rest.endswith(b"\r\n") and len(rest) - 2 == int(total)
    header, payload = rest[:int(header_len)], rest[int(header_len):-2]
    assert header.startswith(b"NATS/1.0\r\n") and header.endswith(b"\r\n\r\n")
    fields = dict(h.split(": ", 1) for h in header.decode().split("\r\n")[1:-2])
    return subject.decode(), reply.decode(), fields["Nats-Msg-Id"], payload


class Harness:
    def __init__(self, limit: int = 8, batch: int = 4, timeout_s: float = 5.0) -> None:
        self.wakes = 0
        self.nc = FakeClient()
        self.window = AckWindow(limit, timeout_s, batch, self._wake)
        asyncio.run(self.window.bind(self.nc))  # type: ignore[arg-type]

    def _wake(self) -> None:
        self.wakes += 1

    def publish(self, batch: list[Outgoing]) -> list[str]:
        """Publishes; returns the reply subject of each message sent."""
        before = len(self.nc.commands)
        asyncio.run(self.window.publish(batch))
        return [parse_hpub(c)[1] for c in self.nc.commands[before:]]

    def ack(self, reply: str, data: bytes = STORED) -> None:
        asyncio.run(self.window._on_ack(FakeMsg(reply, data)))  # type: ignore[arg-type]


@pytest.mark.parametrize("fast", [True, False], ids=["own-commands", "client-publish"])
def test_each_message_goes_out_with_its_dedupe_id_and_its_own_reply(monkeypatch: pytest.MonkeyPatch,
                                                                     fast: bool) -> None:
    monkeypatch.setattr(acks_module, "FAST_PATH", fast)
    h = Harness()
    batch = [message(i, size=100 + i) for i in range(3)]
    h.publish(batch)
    parsed = [parse_hpub(c) for c in h.nc.commands]
    assert [p[0] for p in parsed] == [m.subject for m in batch]
    assert [p[2] for p in parsed] == [m.msg_id for m in batch]
    assert [p[3] for p in parsed] == [m.data for m in batch]
    assert len({p[1] for p in parsed}) == 3  # one reply subject per message, under one inbox
    assert h.window.pending == 3 and h.window.room() == 5
    if fast:
        assert h.nc.flushes == 1 and h.nc.stats["out_msgs"] == 3  # one flush for the batch


def test_acks_in_any_order_count_published_and_duplicates() -> None:
    h = Harness()
    replies = h.publish([message(i) for i in range(4)])
    h.ack(replies[2])
    h.ack(replies[0], ALREADY)
    h.ack(replies[0])  # a second ack of the same message is ignored
    h.ack(replies[1], b'{"stream":"QAMOE","seq":8,"duplicate":false}')
    assert h.window.published == 3 and h.window.duplicates == 1 and h.window.pending == 1
    assert [m.seq for m in h.window.unbind()] == [3]  # what is left, in the order it was sent


def test_an_error_ack_fails_the_window_and_keeps_the_message_in_its_place() -> None:
    h = Harness()
    replies = h.publish([message(i) for i in range(4)])
    h.ack(replies[1], REFUSED)
    h.ack(replies[3])
    assert h.window.failed and h.wakes >= 1 and h.window.published == 1
    h.ack(replies[0], b"")  # no responders: an empty reply with a status header
    assert h.window.published == 1
    assert [m.seq for m in h.window.unbind()] == [0, 1, 2]  # sent again oldest first
    assert not h.window.failed


def test_acks_of_an_earlier_connection_are_ignored() -> None:
    h = Harness()
    old = h.publish([message(0), message(1)])
    assert [m.seq for m in h.window.unbind()] == [0, 1]
    asyncio.run(h.window.bind(h.nc))  # type: ignore[arg-type]
    new = h.publish([message(0)])
    h.ack(old[0])  # token 0 of the old inbox: not the new connection's token 0
    assert h.window.pending == 1 and h.window.published == 0
    h.ack(new[0])
    assert h.window.pending == 0 and h.window.published == 1


def test_the_oldest_unacknowledged_message_expires() -> None:
    h = Harness(timeout_s=0.2)
    replies = h.publish([message(i) for i in range(3)])
    assert not h.window.expired(time.monotonic_ns())
    h.ack(replies[0])
    h.ack(replies[2])
    assert h.window.expired(time.monotonic_ns() + 300_000_000)  # seq 1 waited past the timeout
    h.ack(replies[1])
    assert not h.window.expired(time.monotonic_ns() + 300_000_000)  # nothing in flight


def test_the_window_wakes_the_sender_when_a_batch_fits_again_and_when_empty() -> None:
    h = Harness(limit=8, batch=4)
    replies = h.publish([message(i) for i in range(8)])
    assert h.window.room() == 0
    for r in replies[:3]:
        h.ack(r)
    assert h.wakes == 0
    h.ack(replies[3])  # 4 left: a full batch fits
    assert h.wakes == 1 and h.window.room() == 4
    for r in replies[4:]:
        h.ack(r)
    assert h.wakes == 2 and h.window.pending == 0


def test_a_message_over_max_payload_is_dropped_and_counted_not_retried() -> None:
    h = Harness()
    h.nc.max_payload = 500
    h.publish([message(0), message(1, size=1000), message(2)])
    assert h.window.too_large == 1
    assert [parse_hpub(c)[2] for c in h.nc.commands] == [message(0).msg_id, message(2).msg_id]
    assert h.window.pending == 2


def test_publishing_on_a_lost_connection_raises_and_keeps_nothing_in_flight() -> None:
    import nats.errors

    h = Harness()
    h.nc.is_connected = False
    with pytest.raises(nats.errors.ConnectionClosedError):
        h.publish([message(0)])
    assert h.window.pending == 0  # nothing taken: the bridge's buffer still holds it

# ------------------------------------------------------------------------------------------------ ingest


def test_ingest_builds_the_same_subject_and_id_as_the_scheme_and_counts_gaps() -> None:
    buffer: BoundedBuffer[Outgoing] = BoundedBuffer(100)
    woken = threading.Event()
    ingest = Ingest(BridgeConfig(site="lab"), buffer, woken.set)
    raw = "/data/room 1.mp4"
    got = [(Received("qamoe.v1.sentiment", {"source_id": raw, "seq": s, "sent": {"mono_ns": 50 + s}}), b"{}")
           for s in (0, 1, 3)]
    got.append((Received("qamoe.v1.sentiment", {"source_id": "", "seq": 4}), b"{}"))  # rejected
    ingest.take_many(got, 123)
    out = buffer.take(10)
    source = sanitise_source(raw)
    assert source is not None
    assert [o.subject for o in out] == [subject_for("sentiment", "lab", source)] * 3
    assert [o.msg_id for o in out] == [msg_id("lab", source, "sentiment", s, 50 + s) for s in (0, 1, 3)]
    assert [o.first for o in out] == [True, False, False]
    assert ingest.received == 3 and ingest.rejected == 1 and ingest.tracker.lost == 1 and woken.is_set()


def test_buffer_push_many_drops_the_oldest_when_full() -> None:
    b: BoundedBuffer[int] = BoundedBuffer(4)
    b.push_many([0, 1, 2])
    assert b.push_many([3, 4, 5]) == 2
    assert b.dropped == 2 and b.take(10) == [2, 3, 4, 5]
