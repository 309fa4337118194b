"""Hostile ZeroMQ peers, each a separate process (as another local program would be), for issue 20's tests.

    python -m tests.faults.hostile KIND ENDPOINT SECONDS [N]

connects to ENDPOINT (loopback only: the tests start the publisher on 127.0.0.1), attacks for SECONDS (every loop
is bounded in count and time), prints one JSON line of what it did, and exits; the kinds that hold connections
(silent_*, idle_zmtp) first print a line {"ready": true, ...} once they are in place. N: the count of a silent
kind, or the longest prefix of `random`. Kinds:

  oversize     10 SUB sockets, each subscribing to one 1 MB random prefix, resubscribing after each cut
  random       30 SUB sockets x 200 random prefixes of 1-64 bytes (6,000 prefixes, all within the frame
               limit: the costliest case found), all sent again after each cut (libzmq reconnects)
  churn        connect, subscribe to a random prefix, close: as many cycles as the time allows (<= 5,000)
  garbage      200 raw TCP connections: random bytes, a truncated ZMTP greeting, a greeting then junk, silence
  never_reads  20 SUB sockets subscribed to everything with 1-message receive queues, never reading
  combined     what issue 20 reported: 50 x 1 MB + 200 garbage + 200 short random prefixes at once
  silent_subs  N SUB sockets (default 1000) that connect and never subscribe; ZeroMQ answers the publisher's
               heartbeats for them, so they stay
  silent_zmtp  N raw TCP connections (default 1000) that complete a ZMTP 3.0 NULL handshake as a SUB socket
               and then send nothing: not even the answer to a heartbeat
  idle_zmtp    the same, but each sends a PING command every second, which keeps it past heartbeats
               (N 0: as many as this process's descriptors allow, or until connections stop being accepted)
  silent_flood silent_subs that come back 10 ms after each cut, not ZeroMQ's default 100 ms: a reconnect storm
"""

from __future__ import annotations

import json
import os
import random
import resource
import select
import socket
import sys
import time

import zmq

ZMTP_SIGNATURE = b"\xff" + b"\x00" * 8 + b"\x7f"
# ZMTP 3.0: signature, version 3.0, mechanism NULL (20 bytes), as-server 0, 31 bytes of filler
ZMTP_GREETING = ZMTP_SIGNATURE + b"\x03\x00" + b"NULL".ljust(20, b"\x00") + b"\x00" * 32


def _command(name: bytes, body: bytes = b"") -> bytes:
    """A short ZMTP command frame: flags 0x04, size, name length, name, body."""
    data = bytes([len(name)]) + name + body
    return b"\x04" + bytes([len(data)]) + data


SUB_READY = _command(b"READY", b"\x0bSocket-Type" + (3).to_bytes(4, "big") + b"SUB")
PING = _command(b"PING", b"\x00\x00")  # TTL 0, no context: any frame resets the peer's heartbeat timeout
BATCH = 50  # connections opened at once: within the publisher's listen backlog (ZeroMQ: 100), or SYNs are dropped


def _host_port(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.removeprefix("tcp://").rpartition(":")
    if host not in ("127.0.0.1", "localhost"):
        raise SystemExit(f"hostile peers attack loopback only, not {host}")
    return host, int(port)


def _subs(ctx: zmq.Context, endpoint: str, n: int, **opts: int) -> list[zmq.Socket]:
    socks = []
    for _ in range(n):
        s = ctx.socket(zmq.SUB)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.SNDHWM, 0)  # queue every subscription: the publisher decides what to accept
        for k, v in opts.items():
            s.setsockopt(getattr(zmq, k), v)
        s.connect(endpoint)
        socks.append(s)
    return socks


def _hold(seconds: float, socks: list[zmq.Socket], read: bool = True) -> None:
    """Keep the sockets open (and, unless told not to, read whatever they get) until the time is up."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.05)
        if read:
            for s in socks:
                while s.poll(0):
                    s.recv()


def oversize(ctx: zmq.Context, endpoint: str, seconds: float, n: int = 10) -> dict:
    socks = _subs(ctx, endpoint, n)
    for s in socks:
        s.setsockopt(zmq.SUBSCRIBE, os.urandom(1_000_000))
    _hold(seconds, socks)
    return {"sockets": n, "prefix_bytes": 1_000_000}


def random_prefixes(ctx: zmq.Context, endpoint: str, seconds: float, n: int = 30, per: int = 200,
                    max_len: int = 64) -> dict:
    rng = random.Random(0)
    socks = _subs(ctx, endpoint, n)
    for s in socks:
        for _ in range(per):
            s.setsockopt(zmq.SUBSCRIBE, rng.randbytes(rng.randint(1, max_len)))
    _hold(seconds, socks)
    return {"sockets": n, "prefixes": n * per}


def churn(ctx: zmq.Context, endpoint: str, seconds: float, limit: int = 5000) -> dict:
    end, cycles = time.monotonic() + seconds, 0
    while time.monotonic() < end and cycles < limit:
        s = ctx.socket(zmq.SUB)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(endpoint)
        s.setsockopt(zmq.SUBSCRIBE, os.urandom(8))
        time.sleep(0.001)
        s.close()
        cycles += 1
    return {"cycles": cycles}


def _garbage_socket(addr: tuple[str, int], i: int) -> socket.socket | None:
    try:
        c = socket.create_connection(addr, timeout=2)
        payload = (os.urandom(300), ZMTP_SIGNATURE[:5], ZMTP_SIGNATURE + b"\x03\x00" + os.urandom(200), b"")[i % 4]
        c.sendall(payload)
        return c
    except OSError:  # refused or reset: the publisher closed it, which is allowed
        return None


def garbage(ctx: zmq.Context, endpoint: str, seconds: float, n: int = 200) -> dict:
    addr = _host_port(endpoint)
    conns = [c for i in range(n) if (c := _garbage_socket(addr, i)) is not None]
    time.sleep(seconds)
    for c in conns:
        c.close()
    return {"connections": len(conns)}


def never_reads(ctx: zmq.Context, endpoint: str, seconds: float, n: int = 20) -> dict:
    socks = _subs(ctx, endpoint, n, RCVHWM=1, RCVBUF=4096)
    for s in socks:
        s.setsockopt(zmq.SUBSCRIBE, b"")
    _hold(seconds, socks, read=False)
    return {"sockets": n}


def combined(ctx: zmq.Context, endpoint: str, seconds: float) -> dict:
    big = _subs(ctx, endpoint, 50)
    for s in big:
        s.setsockopt(zmq.SUBSCRIBE, os.urandom(1_000_000))
    addr = _host_port(endpoint)
    conns = [c for i in range(200) if (c := _garbage_socket(addr, i)) is not None]
    small = _subs(ctx, endpoint, 200)
    for s in small:
        s.setsockopt(zmq.SUBSCRIBE, os.urandom(8))
    _hold(seconds, big + small)
    for c in conns:
        c.close()
    return {"oversize_sockets": 50, "garbage": len(conns), "random_sockets": 200}


SETTLE_S = 2.0  # ZeroMQ connects in the background: the SUB sockets are in place (or refused) by then


def silent_subs(ctx: zmq.Context, endpoint: str, seconds: float, n: int = 1000, reconnect_ms: int = 100) -> dict:
    ctx.set(zmq.MAX_SOCKETS, n + 64)  # ZeroMQ's default is 1023 sockets per context
    t0 = time.monotonic()
    socks = _subs(ctx, endpoint, n, RECONNECT_IVL=reconnect_ms, RECONNECT_IVL_MAX=reconnect_ms)
    _hold(min(SETTLE_S, seconds / 4), socks, read=False)
    _ready(sockets=n)
    _hold(seconds - (time.monotonic() - t0), socks, read=False)
    return {"sockets": n, "reconnect_ms": reconnect_ms}


def silent_flood(ctx: zmq.Context, endpoint: str, seconds: float, n: int = 1000) -> dict:
    return silent_subs(ctx, endpoint, seconds, n, reconnect_ms=10)


class _ZmtpPeer:
    """A TCP connection that has sent a SUB socket's whole NULL handshake (greeting and READY) and then reads
    what comes, non-blocking: `handshaken` once the publisher's greeting and READY have arrived."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock  # connected, non-blocking
        self.sock.send(ZMTP_GREETING + SUB_READY)  # 75 bytes into an empty buffer: sent whole
        self.head = b""  # what arrived before the handshake was seen through
        self.handshaken = False
        self.open = True

    def pump(self, ping: bool) -> None:
        """Read what arrived (the publisher's heartbeats must not fill the buffers); send a PING if told to."""
        if not self.open:
            return
        try:
            if ping and self.handshaken:
                self.sock.send(PING)
            while chunk := self.sock.recv(4096):
                if not self.handshaken:
                    self.head += chunk
                    h = self.head
                    self.handshaken = len(h) >= 66 and len(h) >= 66 + h[65] and b"READY" in h[64:]
            self.open = False  # EOF: the publisher closed it
            self.sock.close()
        except BlockingIOError:  # nothing more to read now
            pass
        except OSError:  # reset by the publisher
            self.open = False
            self.sock.close()


def _connect_batch(addr: tuple[str, int], n: int, timeout_s: float) -> list[socket.socket]:
    """Up to `n` connections opened at once (non-blocking), those connected within `timeout_s`."""
    pending: dict[int, socket.socket] = {}
    for _ in range(n):
        try:
            s = socket.socket()
        except OSError:  # this process is out of descriptors
            break
        s.setblocking(False)
        s.connect_ex(addr)
        pending[s.fileno()] = s
    poller = select.poll()
    for fd in pending:
        poller.register(fd, select.POLLOUT)
    done: list[socket.socket] = []
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        for fd, _ in poller.poll(50):
            poller.unregister(fd)
            s = pending.pop(fd)
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                done.append(s)
            else:
                s.close()
    for s in pending.values():  # not accepted in time: the publisher's backlog is full
        s.close()
    return done


def _zmtp_peers(endpoint: str, n: int, ping: bool, until: float) -> list[_ZmtpPeer]:
    """Up to `n` handshaking connections (n 0: as many as this process's descriptors allow, stopping once
    a batch gets none), the earlier ones kept pumped while the later ones connect."""
    addr = _host_port(endpoint)
    limit = n or resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 32
    peers: list[_ZmtpPeer] = []
    while len(peers) < limit and time.monotonic() < until:
        batch = _connect_batch(addr, min(BATCH, limit - len(peers)), 1.5)
        peers += [_ZmtpPeer(s) for s in batch]
        for p in peers:
            p.pump(ping)
        if not batch:
            break
    return peers


def silent_zmtp(ctx: zmq.Context, endpoint: str, seconds: float, n: int = 1000, ping: bool = False) -> dict:
    t0 = time.monotonic()
    end = t0 + seconds
    peers = _zmtp_peers(endpoint, n, ping, t0 + seconds / 2)
    time.sleep(0.2)
    for p in peers:
        p.pump(ping)
    _ready(connections=len(peers), handshaken=sum(p.handshaken for p in peers),
           open=sum(p.open for p in peers), connect_s=round(time.monotonic() - t0, 2))
    while time.monotonic() < end:
        time.sleep(0.5)
        for p in peers:
            p.pump(ping)
    return {"connections": len(peers), "handshaken": sum(p.handshaken for p in peers),
            "open_at_end": sum(p.open for p in peers)}


def idle_zmtp(ctx: zmq.Context, endpoint: str, seconds: float, n: int = 1000) -> dict:
    return silent_zmtp(ctx, endpoint, seconds, n, ping=True)


def _ready(**what: float) -> None:
    """One line on stdout as soon as the attack is in place (the test then connects a latecomer)."""
    print(json.dumps({"ready": True, **what}), flush=True)


KINDS = {"oversize": oversize, "random": random_prefixes, "churn": churn, "garbage": garbage,
         "never_reads": never_reads, "combined": combined, "silent_subs": silent_subs,
         "silent_flood": silent_flood, "silent_zmtp": silent_zmtp, "idle_zmtp": idle_zmtp}


def main(argv: list[str]) -> None:
    kind, endpoint, seconds = argv[0], argv[1], float(argv[2])
    extra = {("max_len" if kind == "random" else "n"): int(argv[3])} if len(argv) > 3 else {}
    _host_port(endpoint)
    ctx = zmq.Context()
    t0 = time.monotonic()
    done = KINDS[kind](ctx, endpoint, seconds, **extra)
    print(json.dumps({"kind": kind, "seconds": round(time.monotonic() - t0, 2), **done}), flush=True)
    # exit without tearing the sockets down: libzmq frees a subscription trie recursively, and a SUB socket
    # holding a 1 MB prefix overflows the stack doing so (the attacker's own crash, not the publisher's)
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
