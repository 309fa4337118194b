"""`AckWindow`: publishes bridged messages to JetStream over the core NATS connection and keeps its own account
of JetStream's acknowledgements, with a bounded number of messages in flight.

Why not `JetStreamContext.publish_async`: per message it draws a random token from `os.urandom`, builds a
future with a done-callback, takes a semaphore, and each ack is JSON-parsed into a `PubAck`; ~75 us of CPU a
message on the 2-core reference machine, which capped a bridge at ~11,000 msgs/s (docs/BENCHMARKS.md, issue
17). Here a message is one `HPUB` command with a reply subject `<inbox>.<n>` (n counts up per connection), and
an ack is checked by looking at its bytes: `{"stream":"QAMOE", "seq":N}` (plus `"duplicate": true` when
JetStream already had the id) or `{"error":{...}}`.

Guarantees (what `Bridge` relies on):
- a message stays here until JetStream acknowledges it; `unbind()` hands back every unacknowledged one in the
  order it was sent, to go back to the head of the buffer and be sent again (its Nats-Msg-Id de-duplicates);
- an error ack, or no ack for the oldest message within the timeout, sets `failed` / `expired()`: the bridge
  then reconnects (and re-checks the stream) before sending again;
- acks from an earlier connection or for a message already handed back are ignored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from edge.fleet.ingest import Outgoing

log = logging.getLogger(__name__)
HEADER_OPEN = b"NATS/1.0\r\nNats-Msg-Id: "
HEADER_CLOSE = b"\r\n\r\n"
MSG_ID = "Nats-Msg-Id"
ACK_PENDING_LIMIT = 1_000_000  # acks nats-py may queue for the callback (far above any window)


class AckWindow:
    """At most `limit` messages published and not yet acknowledged. `wake()` is called when the bridge's send
    loop may have something to do: room for a full batch again (`low_water`), nothing left in flight, or a
    failure. Counters (`published`, `duplicates`, `lag_max_ns`) last across connections."""

    def __init__(self, limit: int, timeout_s: float, batch: int, wake: Callable[[], None]) -> None:
        self.limit = limit
        self.low_water = max(0, limit - batch)
        self.timeout_ns = int(timeout_s * 1e9)
        self.failed = False
        self.published = 0
        self.duplicates = 0
        self.lag_max_ns: int | None = None
        self.too_large = 0
        self._wake = wake
        self._inflight: dict[int, tuple[Outgoing, int]] = {}  # token -> (message, when sent)
        self._next = 0  # the next token
        self._oldest = 0  # no token below this one is in flight
        self._nc: Client | None = None
        self._sub: Subscription | None = None
        self._prefix = ""
        self._prefix_b = b""

    # ---------------------------------------------------------------------------------------- connection
    async def bind(self, nc: Client) -> None:
        """Receive acks on a fresh inbox of `nc` (after each connect; `unbind()` the previous one first)."""
        prefix = nc.new_inbox() + "."
        self._sub = await nc.subscribe(prefix + "*", cb=self._on_ack, pending_msgs_limit=ACK_PENDING_LIMIT,
                                       pending_bytes_limit=ACK_PENDING_LIMIT * 128)
        self._nc, self._prefix, self._prefix_b = nc, prefix, prefix.encode()
        self._next = self._oldest = 0
        self.failed = False

    def unbind(self) -> list[Outgoing]:
        """Forget the connection; returns the unacknowledged messages in the order they were sent."""
        items = [self._inflight[t][0] for t in sorted(self._inflight)]
        self._inflight.clear()
        self._nc, self._sub, self._prefix, self._prefix_b = None, None, "", b""
        self.failed = False
        return items

    @property
    def pending(self) -> int:
        return len(self._inflight)

    def room(self) -> int:
        return self.limit - len(self._inflight)

    # ------------------------------------------------------------------------------------------- publish
    async def publish(self, batch: list[Outgoing]) -> None:
        """Publish `batch` (each with its Nats-Msg-Id) and flush. Every message is in flight from here on, even
        when publishing raises (nats.errors.Error, OSError): `unbind()` returns what was not acknowledged. A
        message larger than the server's max_payload can never be stored: it is dropped, logged and counted
        (`too_large`) instead of failing the connection again and again."""
        nc = self._nc
        assert nc is not None, "bind() first"
        if not nc.is_connected:
            raise nats.errors.ConnectionClosedError
        now, limit = time.monotonic_ns(), nc.max_payload
        inflight, prefix, token = self._inflight, self._prefix_b, self._next
        commands, kept = [], []
        for m in batch:
            header = HEADER_OPEN + m.msg_id.encode() + HEADER_CLOSE
            size = len(header) + len(m.data)
            if size > limit:
                self._too_large(m, size, limit)
                continue
            inflight[token] = (m, now)
            kept.append((m, token))
            commands.append(b"HPUB %s %s%d %d %d\r\n%s%s\r\n" % (
                m.subject.encode(), prefix, token, len(header), size, header, m.data))
            token += 1
        self._next = token
        if FAST_PATH:
            await send_commands(nc, commands)
        else:
            for m, t in kept:
                await nc.publish(m.subject, m.data, reply=f"{self._prefix}{t}", headers={MSG_ID: m.msg_id})

    def _too_large(self, m: Outgoing, size: int, limit: int) -> None:
        self.too_large += 1
        log.error("%s seq %d not bridged: %d bytes, over the NATS server's max_payload (%d)",
                  m.subject, m.seq, size, limit)

    def expired(self, now_ns: int) -> bool:
        """True when the oldest message in flight has waited longer than the ack timeout."""
        inflight = self._inflight
        while self._oldest < self._next and self._oldest not in inflight:
            self._oldest += 1
        entry = inflight.get(self._oldest)
        return entry is not None and now_ns - entry[1] > self.timeout_ns

    # ----------------------------------------------------------------------------------------------- acks
    async def _on_ack(self, msg: Msg) -> None:
        subject = msg.subject
        if not subject.startswith(self._prefix) or not self._prefix:
            return  # an earlier connection's
        try:
            token = int(subject[len(self._prefix):])
        except ValueError:
            return
        entry = self._inflight.pop(token, None)
        if entry is None:
            return  # already handed back to be sent again: its id de-duplicates the second copy
        data = msg.data
        if not data or b'"error"' in data or b'"seq"' not in data:
            self._inflight[token] = entry  # not stored: keep it to be sent again
            if not self.failed:
                log.debug("JetStream did not store %s: %r %r", entry[0].subject, data[:200], msg.headers)
            self.failed = True
            self._wake()
            return
        self.published += 1
        if b'"duplicate"' in data and _says_true(data.split(b'"duplicate"', 1)[1]):
            self.duplicates += 1
        lag = time.monotonic_ns() - entry[0].received_ns
        if self.lag_max_ns is None or lag > self.lag_max_ns:
            self.lag_max_ns = lag
        left = len(self._inflight)
        if left == self.low_water or left == 0:
            self._wake()


def _says_true(rest: bytes) -> bool:
    """After a JSON key: is its value `true`? (`: true`, `:true`; nats-server 2.9 writes `"duplicate": true`)"""
    return rest.lstrip(b" :").startswith(b"true")


async def send_commands(nc: Client, commands: list[bytes]) -> None:
    """Queue ready-made protocol commands on nats-py's write buffer and flush them once.

    nats-py (2.x) has no public call that publishes a ready-made batch: `Client.publish` validates the
    subject, encodes the header dict and formats the command again, per message. This takes the internal steps
    `Client.publish` takes after that (`_send_command`, then `_flush_pending`: nats-py's own flusher writes
    them), checked to exist at import (`FAST_PATH`); without them `AckWindow` publishes through
    `Client.publish` (the same messages, more CPU)."""
    for command in commands:
        await nc._send_command(command)
    nc.stats["out_msgs"] += len(commands)
    await nc._flush_pending()


FAST_PATH = all(callable(getattr(Client, name, None)) for name in ("_send_command", "_flush_pending"))
