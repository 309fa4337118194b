"""`ZmqReader`: the nodes' ZeroMQ streams into `Ingest`, read on the bridge's asyncio event loop.

One SUB socket connected to every node endpoint (ZeroMQ fair-queues between them and reconnects to each by
itself, with capped backoff: BridgeConfig.zmq_reconnect_ms doubling to zmq_reconnect_max_ms). The socket's
file descriptor wakes the loop; each wake reads what has arrived, READ_MANY messages at a time, then lets the
sender run before reading on.

Why on the loop and not on a thread of its own: at ~15,000 msgs/s a reader thread and the sending loop fought
over the GIL, and the loop waited ~5 ms (the interpreter's switch interval) to get it back after each socket
call (a profile showed 6 ms per `socket.send` to NATS); one thread doing both runs without that convoy.
"""

from __future__ import annotations

import asyncio
import logging
import time

import zmq

from edge.fleet.config import BridgeConfig
from edge.fleet.ingest import Ingest
from edge.publish import curve
from edge.publish.config import parse_endpoint
from edge.publish.errors import MessageError
from edge.publish.subscriber import Received, decode
from edge.publish.wire import TOPIC_PREFIX

log = logging.getLogger(__name__)
POLL_S = 0.1  # a safety net under the descriptor's wake-ups, and the quiet time that ends the last read
RECEIVE_HWM = 10_000  # messages ZeroMQ may hold for the bridge before the node's socket drops for it
READ_MANY = 256  # messages read per wake-up before the sender gets a turn
CLOSE_S = 2.0  # at the end, how long to go on taking what the nodes still send


def open_socket(context: zmq.Context[zmq.Socket[bytes]], endpoints: tuple[str, ...],
                cfg: BridgeConfig) -> zmq.Socket[bytes]:
    """A SUB socket for every v1 topic, connected to `endpoints`, configured as
    edge.publish.subscriber.Subscriber configures its own (which the bridge cannot use: it needs the socket's
    descriptor for the event loop)."""
    sock = context.socket(zmq.SUB)
    try:
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, RECEIVE_HWM)
        sock.setsockopt(zmq.RECONNECT_IVL, cfg.zmq_reconnect_ms)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, cfg.zmq_reconnect_max_ms)
        if any(parse_endpoint(ep).is_ipv6 for ep in endpoints):
            sock.setsockopt(zmq.IPV6, 1)
        if cfg.curve_server_public_key_file is not None and cfg.curve_client_secret_key_file is not None:
            curve.make_client(sock, cfg.curve_server_public_key_file, cfg.curve_client_secret_key_file)
        sock.setsockopt(zmq.SUBSCRIBE, TOPIC_PREFIX.encode())
        for ep in endpoints:
            sock.connect(ep)
    except BaseException:
        sock.close(linger=0)
        raise
    return sock


class ZmqReader:
    def __init__(self, endpoints: tuple[str, ...], cfg: BridgeConfig, ingest: Ingest) -> None:
        self.endpoint = ", ".join(endpoints)
        self._ingest = ingest
        self._context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        try:
            self._socket = open_socket(self._context, endpoints, cfg)
        except BaseException:
            self._context.term()
            raise
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fd: int | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._more = False  # a _read_some is scheduled

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Read on `loop` from now on (call on the loop's thread)."""
        self._loop = loop
        fd = self._socket.getsockopt(zmq.FD)
        assert isinstance(fd, int)
        self._fd = fd
        loop.add_reader(fd, self._on_event)
        self._tick()

    def _tick(self) -> None:
        # ZeroMQ's descriptor is edge-triggered; reading until EAGAIN re-arms it, and this timer makes sure a
        # missed edge costs at most POLL_S
        self._on_event()
        assert self._loop is not None
        self._timer = self._loop.call_later(POLL_S, self._tick)

    def _on_event(self) -> None:
        if not self._more:  # else a read is already due on this loop turn: one chain of reads, not several
            self._read_some()

    def _read_some(self) -> None:
        self._more = False
        if self.read_available(READ_MANY) == READ_MANY and self._loop is not None and self._fd is not None:
            self._more = True  # more may be waiting: read on after the sender's turn
            self._loop.call_soon(self._read_some)

    def read_available(self, limit: int) -> int:
        """Read up to `limit` messages that have already arrived (no waiting) into Ingest; how many were read."""
        if self._socket.closed:
            return 0
        got: list[tuple[Received, bytes]] = []
        n = 0
        while n < limit:
            try:
                frames = self._socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            except zmq.ZMQError as exc:  # the socket itself failed: say so; the timer tries again
                log.error("reading %s: %s", self.endpoint, exc)
                break
            n += 1
            try:
                got.append((decode(frames), frames[1]))
            except MessageError as exc:
                self._ingest.count_undecodable()
                log.debug("undecodable message from %s: %s", self.endpoint, exc)
        if got:
            self._ingest.take_many(got, time.monotonic_ns())
        return n

    async def close(self) -> None:
        """Stop reading on wake-ups; take what has already arrived (until POLL_S passes with nothing, for at most
        CLOSE_S: nodes that keep sending cannot hold the end back); close the socket."""
        if self._socket.closed:
            return
        if self._timer is not None:
            self._timer.cancel()
        if self._loop is not None and self._fd is not None:
            self._loop.remove_reader(self._fd)
            self._fd = None
        try:
            end = time.monotonic() + CLOSE_S
            while time.monotonic() < end:
                if self.read_available(READ_MANY):
                    await asyncio.sleep(0)  # the sender's turn
                    continue
                await asyncio.sleep(POLL_S)
                if not self.read_available(READ_MANY):
                    break
        finally:
            self._socket.close(linger=0)
            self._context.term()
