"""The publishing socket's set-up: an XPUB configured for the publisher's contract, bound to its endpoint, and
two helpers of the thread that owns it. (edge.publish.publisher says why each option is set.)"""

from __future__ import annotations

import os
import struct
import threading
from typing import Any

import zmq

from edge.publish import curve
from edge.publish.config import PublisherConfig
from edge.publish.errors import PortInUseError, PublishError
from edge.publish.guard import CURVE_FRAME_BYTES

_EVENT = struct.Struct("=HI")  # a monitor event's first frame


def configure_xpub(sock: zmq.Socket, context: zmq.Context, cfg: PublisherConfig) -> Any:
    """Set every option of the publisher's XPUB socket (before it binds); returns the CURVE authenticator
    started on `context`, or None without CURVE (the caller stops it on close)."""
    sock.setsockopt(zmq.SNDHWM, cfg.send_hwm)
    sock.setsockopt(zmq.LINGER, cfg.linger_ms)
    sock.setsockopt(zmq.XPUB_NODROP, 1)
    sock.setsockopt(zmq.XPUB_VERBOSE, 1)  # report every subscriber's subscription, not just the first
    limits = cfg.limits  # what a peer may send (edge.publish.guard)
    frame = max(limits.max_frame_bytes, CURVE_FRAME_BYTES) if cfg.curve_enabled else limits.max_frame_bytes
    sock.setsockopt(zmq.MAXMSGSIZE, frame)
    # no receive high-water mark: a connection whose input ZeroMQ has paused (its pipe full) and that then
    # fails (a reset by the peer, the guard's shutdown) can trip `!_io_error` in libzmq 4.3.5's heartbeat
    # timer and abort the process (seen here under a subscription flood, docs/RELIABILITY.md)
    sock.setsockopt(zmq.RCVHWM, 0)
    sock.setsockopt(zmq.HANDSHAKE_IVL, limits.handshake_ivl_ms)
    if cfg.heartbeat_ivl_ms:
        sock.setsockopt(zmq.HEARTBEAT_IVL, cfg.heartbeat_ivl_ms)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, cfg.heartbeat_timeout_ms)
    if cfg.parsed_endpoint.is_ipv6:
        sock.setsockopt(zmq.IPV6, 1)
    if cfg.curve_server_secret_key_file is not None and cfg.curve_allowed_clients_dir is not None:
        auth = curve.start_authenticator(context, cfg.curve_allowed_clients_dir)
        curve.make_server(sock, cfg.curve_server_secret_key_file)
        return auth
    return None


def bind_xpub(sock: zmq.Socket, cfg: PublisherConfig) -> str:
    """Bind to the configured endpoint; returns the endpoint bound (the port the OS chose for port 0)."""
    ep = cfg.parsed_endpoint
    try:
        sock.bind(ep.url)
    except zmq.ZMQError as exc:
        if exc.errno == zmq.EADDRINUSE:
            raise PortInUseError(ep.url, ep.port) from exc
        raise PublishError(
            f"cannot bind {ep.url}: {exc.strerror}; use an address of this machine, e.g. tcp://127.0.0.1:5556"
        ) from exc
    return sock.getsockopt_string(zmq.LAST_ENDPOINT)


def lower_thread_priority(nice: int) -> None:
    """Run this thread at a lower CPU priority (Linux: a thread is a task with its own nice value). A flood of
    subscriptions costs CPU inside ZeroMQ on this thread; on a busy edge box the pipeline's threads should win
    that contest, not the flood. Sending the stream costs little and is unaffected while the box is not full."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except (AttributeError, OSError):  # not Linux, or not allowed: keep the default
        pass


def read_events(monitor: zmq.Socket, limit: int) -> list[tuple[int, int]]:
    """Up to `limit` (event, descriptor) pairs waiting on a socket monitor, without blocking. A monitor event
    (zmq_socket_monitor, version 1) is two frames: 16-bit event and 32-bit value, native order; then the
    endpoint, not needed here. (zmq.utils.monitor.recv_monitor_message does the same at ~6x the cost, which
    counts in a reconnect storm: two events per connection.)"""
    events: list[tuple[int, int]] = []
    while len(events) < limit:
        try:
            head = monitor.recv(zmq.NOBLOCK)
        except zmq.Again:
            break
        while monitor.getsockopt(zmq.RCVMORE):
            monitor.recv()
        event, value = _EVENT.unpack_from(head)
        events.append((event, value))
    return events


def close_monitor(monitor: zmq.Socket) -> None:
    """Close the reading end of a socket monitor, first reading what waits there (a few thousand events at
    most). Not `disable_monitor()` on the monitored socket: libzmq 4.3.5 sends each event with a blocking send
    under a lock that disabling takes too (and pyzmq keeps the GIL while it waits), so with ~2,000 events unread
    (a reconnect storm while the publisher closes) the whole process hung. Read, its I/O thread goes on (the
    socket's linger flush needs it); closing the socket and then the context takes the rest down (the context's
    termination ends a send still waiting)."""
    read_events(monitor, 4096)
    monitor.close(linger=0)


def drain_pipe(fd: int) -> None:
    """Read a non-blocking pipe empty (a wake-up pipe: what was written does not matter)."""
    try:
        while os.read(fd, 4096):
            pass
    except (BlockingIOError, OSError):
        pass
