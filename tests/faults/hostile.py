"""Hostile ZeroMQ peers, each a separate process (as another local program would be), for issue 20's tests.

    python -m tests.faults.hostile KIND ENDPOINT SECONDS

connects to ENDPOINT (loopback only: the tests start the publisher on 127.0.0.1), attacks for SECONDS (every loop
is bounded in count and time), prints one JSON line of what it did, and exits. Kinds:

  oversize     10 SUB sockets, each subscribing to one 1 MB random prefix, resubscribing after each cut
  random       30 SUB sockets x 200 random prefixes of 1-64 bytes (6,000 prefixes, all within the frame
               limit: the costliest case found), all sent again after each cut (libzmq reconnects)
  churn        connect, subscribe to a random prefix, close: as many cycles as the time allows (<= 5,000)
  garbage      200 raw TCP connections: random bytes, a truncated ZMTP greeting, a greeting then junk, silence
  never_reads  20 SUB sockets subscribed to everything with 1-message receive queues, never reading
  combined     what issue 20 reported: 50 x 1 MB + 200 garbage + 200 short random prefixes at once
"""

from __future__ import annotations

import json
import os
import random
import socket
import sys
import time

import zmq

ZMTP_SIGNATURE = b"\xff" + b"\x00" * 8 + b"\x7f"


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


KINDS = {"oversize": oversize, "random": random_prefixes, "churn": churn, "garbage": garbage,
         "never_reads": never_reads, "combined": combined}


def main(argv: list[str]) -> None:
    kind, endpoint, seconds = argv[0], argv[1], float(argv[2])
    extra = {"max_len": int(argv[3])} if len(argv) > 3 else {}
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
