"""The door of the publishing port: while it is shut, new TCP connections to the port stay half-open in the kernel
and ZeroMQ cannot accept them; connections already open are not touched. A peer kept outside is not refused:
its TCP stack sends its next packet again by itself (0.2 s later, then 0.4 s, 0.8 s ... after that), and the
first one that arrives with the door open completes its connection.

Why (issue 20, measured in docs/RELIABILITY.md, "Silent peers"): ZeroMQ accepts every connection as fast as its
I/O thread can, and the subscriber guard, on the publisher's Python socket thread, cuts the ones beyond the
connection cap one at a time. A cut SUB socket comes back 100-200 ms later, so N of them keep about
N - (cuts per second x their reconnect interval) connections open at once, whatever the cap says, plus
whatever ZeroMQ accepts while the guard's thread waits for the CPU. Each connection that has been open holds
~50 KB of ZeroMQ's allocator (its buffers and queues, and the high-water mark the allocator keeps), so 1,000 at
once are +50 MB. With the door, the count stops near `SubscriberLimits.accept_pause_threshold`: above it the
door shuts, for at least MIN_SHUT_S and until the guard is back at `max_connections`; the peers that come back
meanwhile wait in their own kernel's retransmissions instead of in this process, and their retransmissions
back off, so a reconnect storm turns into a trickle. A door is never shut for longer than MAX_SHUT_S at a
time, so a count that failed to come down (a cut that did not take) cannot lock newcomers out for long.

Mechanism: a classic BPF socket filter (SO_ATTACH_FILTER, no privilege needed) on the listening socket, which
the kernel consults for the packets of connections it has not handed over yet. It lets a connection request
(SYN) in, so the peer's handshake timer is that of a connected socket (retransmissions from 0.2 s; a dropped
SYN would wait 1 s, then 3 s), and drops everything else: the handshake's last packet and the peer's first
data, without which the kernel does not complete the connection. An accepted connection is a socket of its own
and never sees the filter (one accepted at the very instant the door shuts may inherit it, and is then closed
by the 5 s handshake timeout; its peer reconnects). Linux and TCP only: elsewhere (another OS, ipc://
endpoints) there is no door, and the cap holds only as far as the guard keeps up. numpy-free, torch-free."""

from __future__ import annotations

import ctypes
import logging
import os
import socket
import struct
import time

from edge.publish.guard import LocalAddress, SubscriberLimits

log = logging.getLogger(__name__)

SO_ATTACH_FILTER = 26  # <asm-generic/socket.h> (the socket module does not name these)
SO_DETACH_FILTER = 27
# The filter sees a TCP packet from its TCP header on. (code, jt, jf, k) of struct sock_filter:
_KEEP_SYN_ONLY = b"".join(struct.pack("=HBBI", *insn) for insn in (
    (0x30, 0, 0, 13),  # ldb [13]            the TCP flags
    (0x54, 0, 0, 0x12),  # and #0x12         SYN and ACK
    (0x15, 0, 1, 0x02),  # jeq #0x02         SYN alone: a connection request ...
    (0x06, 0, 0, 0xFFFFFFFF),  # ret #-1     ... is let in whole
    (0x06, 0, 0, 0),  # ret #0               anything else is dropped
))
MIN_SHUT_S = 0.1  # the shortest it stays shut: long enough to catch the peers just cut (back in 100-200 ms)
MAX_SHUT_S = 1.0  # the longest at a time, crowded or not
WARN_INTERVAL_S = 10.0


class _Program(ctypes.Structure):  # struct sock_fprog
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _is_listener(fd: int, port: int) -> bool:
    """`fd` is a listening TCP socket bound to `port`. Opens nothing (the descriptor itself, detached after)."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError:  # not a socket, or closed meanwhile
        return False
    try:
        return (sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM
                and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
                and sock.getsockname()[1] == port)
    except OSError:
        return False
    finally:
        sock.detach()  # ZeroMQ owns it: never close it


def find_listener(port: int) -> int | None:
    """The descriptor of this process's listening TCP socket on `port` (ZeroMQ's, once it has bound), or None
    where the process's descriptors cannot be listed (not Linux) or there is none."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return None
    return next((int(n) for n in names if n.isdigit() and _is_listener(int(n), port)), None)


class Door:
    """Shuts and opens the door of the listening socket `fd` on `port`; `follow(open_connections)` decides
    (module docstring). Not thread-safe: the publisher's socket thread owns it."""

    def __init__(self, fd: int, port: int, *, close_above: int, open_at: int) -> None:
        self._fd, self._port = fd, port
        self.close_above, self.open_at = close_above, open_at
        self.shut = False
        self.shut_count = 0  # times it shut since start
        self.shut_s = 0.0  # seconds it was shut in all, up to its last opening
        self._shut_at = 0.0
        self._broken = False  # a shut or an opening failed: the door is left alone from then on
        self._last_warning = float("-inf")

    @classmethod
    def for_endpoint(cls, local: LocalAddress | None, limits: SubscriberLimits) -> Door | None:
        """The door of a bound publisher's port (`local`: edge.publish.guard.local_address of its endpoint),
        shut above `limits.accept_pause_threshold` connections and open again at `limits.max_connections`;
        None where there can be none (ipc:// or inproc:// endpoints, not Linux)."""
        if local is None or local.transport != "tcp":
            return None
        port = int(local.where)
        fd = find_listener(port)
        if fd is None:
            log.info("no door on port %d (not Linux, or its listening socket not found): the connection cap "
                     "holds only as far as the subscriber guard keeps up", port)
            return None
        return cls(fd, port, close_above=limits.accept_pause_threshold, open_at=limits.max_connections)

    def follow(self, open_connections: int, now: float | None = None) -> None:
        """Shut when more than `close_above` connections are open; open again once they are down to `open_at`
        and it has been shut MIN_SHUT_S, or after MAX_SHUT_S whatever the count."""
        if self._broken:
            return
        now = time.monotonic() if now is None else now
        shut_for = now - self._shut_at
        if not self.shut and open_connections > self.close_above:
            self._set(True, now, open_connections)
        elif self.shut and ((open_connections <= self.open_at and shut_for >= MIN_SHUT_S)
                            or shut_for >= MAX_SHUT_S):
            self._set(False, now, open_connections)

    def _set(self, shut: bool, now: float, open_connections: int) -> None:
        if not _is_listener(self._fd, self._port):  # ZeroMQ closed it (it does not before its socket closes)
            self._broken = True
            log.warning("the publishing port's listening socket is gone: its door is left alone")
            return
        sock = socket.socket(fileno=self._fd)
        try:
            if shut:
                program = ctypes.create_string_buffer(_KEEP_SYN_ONLY)
                fprog = _Program(len(_KEEP_SYN_ONLY) // 8, ctypes.addressof(program))
                sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, bytes(fprog))  # the kernel copies it
            else:
                sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)
        except OSError as exc:  # shutting: a kernel without socket filters; opening: none attached (open)
            self._broken = True
            log.warning("the publishing port's door did not %s (%s): it is left alone from now on",
                        "shut" if shut else "open", exc)
            return
        finally:
            sock.detach()
        if not shut:
            self.shut_s += now - self._shut_at
        self.shut = shut
        if shut:
            self._shut_at = now
            self.shut_count += 1
            if now - self._last_warning >= WARN_INTERVAL_S:
                self._last_warning = now
                log.warning("%d connections open (more than %d): new ones wait outside until they are down to "
                            "%d (peers retry by themselves); shut %d times so far", open_connections,
                            self.close_above, self.open_at, self.shut_count)
