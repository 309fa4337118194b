"""What the publishing socket accepts from its peers, and what happens to a peer that breaks the rules.

A ZeroMQ XPUB socket stores every byte of every subscription prefix a peer sends in a trie, and nothing in ZeroMQ
bounds it: a local program that subscribes to a few long random prefixes grows the publisher by hundreds of MB
(issue 20: 2.8 GB, no message published any more). Subscribers of qamoe-live need very little: the empty prefix
or a prefix of a `qamoe.v1.*` topic, a handful of them. So the publisher enforces, in this order:

1. ZeroMQ's own frame limit (`ZMQ_MAXMSGSIZE`, `SubscriberLimits.max_frame_bytes`: 128 bytes, 512 with
   CURVE, whose handshake needs it): a peer that sends a larger frame (a subscription of a megabyte) is
   disconnected by ZeroMQ's decoder before anything is stored. ZeroMQ does not say why it closed a
   connection, so these show in health as `disconnected`, not as refused.
2. `SubscriberGuard.subscription`: every subscription a peer sends must be the empty prefix, a prefix of a
   published topic, or a well-formed `qamoe.v1.` name (at most `max_prefix_bytes`, characters `[A-Za-z0-9._-]`: a topic a
   newer consumer knows and this publisher does not publish; kept, never matched). A peer may send at most
   `max_subscriptions_per_peer` subscriptions per connection.
3. At most `max_subscribers` connections that subscribe, at once; the one beyond is disconnected at its first
   subscription. (A connection that never completes the ZMTP handshake is closed by ZeroMQ after
   `handshake_ivl_ms`.)
4. At most `max_connections` connections at once, subscribed or not. A connection that completes the
   handshake and never subscribes (a plain SUB socket does; ZeroMQ answers heartbeats for it) breaks no other
   rule and costs a descriptor and ~20 KB inside ZeroMQ for as long as it stays: 1,000 of them filled a
   1024-descriptor table, after which ZeroMQ accepted nobody and spun on the failing accept, and ~6,000 grew
   the process by 172 MB and cost a subscriber messages. Beyond the cap the connection that has gone longest
   without subscribing is disconnected (first in, first out; a subscriber is never displaced). When:
   `SubscriberGuard.enforce`, once per turn of the publisher's loop, after the subscriptions that have
   arrived are judged, so a newcomer whose subscription is in is never taken for a silent one; on each
   accepted connection only above `accept_pause_threshold` (where the port's door shuts; without a door,
   ipc:// or not Linux, that is what bounds a burst). Cutting at each accept (before the loop had read the
   newcomer's subscription) let a burst of connections, a reconnect storm let in at once when the door opens,
   displace a subscriber 26 ms after its handshake, and in one CI run a subscriber did not get in for 8 s. A
   time grace did worse either way: cutting the newcomer when every place was younger than the grace cut each
   newcomer in a storm, and keeping the young (150 ms) slowed the turnover of places so much that a
   subscriber waiting at the shut door did not get in at all in 2 of 5 runs of 1,200 silent peers.

Cutting alone does not bound the connections open at once: a cut SUB socket is back 100-200 ms later, and
ZeroMQ accepts faster than this guard cuts, so a reconnect storm kept 200-1,024 connections open (~20-50 KB of
the process's memory each) and cost half a core. `edge.publish.door` bounds it: above
`pause_accepts_at` open connections the port's door shuts and new connections wait in the kernel (measured in
docs/RELIABILITY.md, "The reconnect storm").

A peer that breaks rule 2, 3 or 4 is disconnected: `shutdown(2)` on its TCP/IPC socket, whose descriptor ZeroMQ
reports with each subscription (`ZMQ_SRCFD`) and with each accepted connection. ZeroMQ then closes the
connection and removes every subscription of that peer from its trie. Before the shutdown the descriptor is
checked to be a connected socket whose local address is the publisher's own, so a descriptor number reused by
something else is never touched; no descriptor is opened for that (a full table is when cuts matter most). A
peer that reconnects and breaks the rules again is disconnected again; each time counts in `refused`.

This module holds the rules and the bookkeeping; `edge.publish.publisher.Publisher` calls it from the thread
that owns its socket. numpy-free, torch-free.
"""

from __future__ import annotations

import logging
import re
import socket
import time
from collections import Counter
from dataclasses import dataclass

import zmq

from edge.publish.errors import PublishConfigError
from edge.publish.wire import TOPICS

log = logging.getLogger(__name__)

NAMESPACE = b"qamoe.v1."
_NAME = re.compile(rb"[A-Za-z0-9._-]*\Z")
WARN_INTERVAL_S = 10.0
CURVE_FRAME_BYTES = 512  # the frame limit with CURVE: its handshake commands are up to ~300 bytes
# why a peer was disconnected (the keys of `SubscriberGuard.refused_by`)
BAD_PREFIX, TOO_MANY_SUBSCRIPTIONS, TOO_MANY_SUBSCRIBERS = "bad_prefix", "too_many_subscriptions", "too_many_subscribers"
TOO_MANY_CONNECTIONS = "too_many_connections"


@dataclass(frozen=True)
class SubscriberLimits:
    """What one publishing socket accepts (module docstring).

    max_frame_bytes             largest frame a peer may send (ZMQ_MAXMSGSIZE): handshake commands and
                                subscriptions; larger: ZeroMQ disconnects. With CURVE at least
                                CURVE_FRAME_BYTES (an INITIATE command is about 300 bytes)
    max_prefix_bytes            longest subscription prefix honoured (the longest topic is 19 bytes)
    max_subscriptions_per_peer  subscriptions one connection may send (a subscriber needs one per topic)
    max_subscribers             connections that subscribe, at once; a further one is disconnected when it
                                subscribes
    max_connections             connections at once, subscribed or not; one more displaces the one that has
                                gone longest without subscribing (rule 4). At least max_subscribers; keep it
                                well below the process's descriptor limit (`ulimit -n`, often 1024)
    handshake_ivl_ms            a connection that has not completed the ZMTP handshake by then is closed
    pause_accepts_at            connections open at once (cut ones not yet closed included) above which the
                                publishing port takes no new ones until they are down to max_connections
                                (edge.publish.door); None: twice max_connections
    """

    max_frame_bytes: int = 128
    max_prefix_bytes: int = 64
    max_subscriptions_per_peer: int = 32
    max_subscribers: int = 32
    max_connections: int = 64
    handshake_ivl_ms: int = 5000
    pause_accepts_at: int | None = None

    def __post_init__(self) -> None:
        for name, low, high in (("max_frame_bytes", 96, 1 << 20), ("max_prefix_bytes", 19, 4096),
                                ("max_subscriptions_per_peer", 3, 100_000), ("max_subscribers", 1, 100_000),
                                ("max_connections", 1, 100_000),
                                ("handshake_ivl_ms", 100, 600_000)):
            value = getattr(self, name)
            if not isinstance(value, int) or not low <= value <= high:
                raise PublishConfigError(f"{name}={value!r}: choose an integer in {low}-{high}")
        if self.max_prefix_bytes + 1 > self.max_frame_bytes:
            raise PublishConfigError(
                f"max_prefix_bytes={self.max_prefix_bytes} needs max_frame_bytes >= {self.max_prefix_bytes + 1}"
            )
        if self.pause_accepts_at is not None and not (
                isinstance(self.pause_accepts_at, int) and self.max_connections < self.pause_accepts_at <= 200_000):
            raise PublishConfigError(
                f"pause_accepts_at={self.pause_accepts_at!r}: choose an integer above max_connections="
                f"{self.max_connections} (at most 200000), or leave it out for twice max_connections"
            )
        if self.max_connections < self.max_subscribers:
            raise PublishConfigError(
                f"max_connections={self.max_connections} < max_subscribers={self.max_subscribers}: every "
                f"subscriber is a connection; raise max_connections to at least {self.max_subscribers}"
            )

    @property
    def accept_pause_threshold(self) -> int:
        return self.pause_accepts_at if self.pause_accepts_at is not None else 2 * self.max_connections


def prefix_allowed(prefix: bytes, limit: int) -> bool:
    """The empty prefix, a prefix of a published topic, or a well-formed `qamoe.v1.` name of at most `limit`
    bytes."""
    if any(topic.encode("ascii").startswith(prefix) for topic in TOPICS):
        return True
    return len(prefix) <= limit and prefix.startswith(NAMESPACE) and _NAME.match(prefix) is not None


class SubscriberGuard:
    """The rules and the per-connection bookkeeping. Not thread-safe: the publisher's socket thread calls it
    under the publisher's state lock.

    `accepted(fd)` / `closed(fd)` follow the socket monitor (`accepted` enforces the connection cap);
    `subscription(fd, notice)` judges one subscription message (b"\\x01" + prefix; b"\\x00" + prefix
    unsubscribes). Both return the reason a peer was disconnected, or None. Notices and monitor events come
    through different sockets, so either may be read first: a notice from a descriptor the monitor has not
    reported yet opens its entry, and one from a descriptor the monitor has reported closed (a late notice of a
    connection that is gone) is ignored."""

    def __init__(self, limits: SubscriberLimits, local: LocalAddress) -> None:
        self.limits = limits
        self._local = local  # the publisher's bound address: only its connections are ever disconnected
        self._peers: dict[int, Counter[str]] = {}  # fd -> counts of what it sent
        self._silent: dict[int, None] = {}  # open, not subscribed, not cut; in the order first seen
        self._gone: set[int] = set()  # descriptors reported closed and not accepted again since
        self._subscribed: set[int] = set()  # connections that have sent a subscription the rules allow
        self._cut: set[int] = set()  # disconnected by a rule, not reported closed yet
        self.refused_by: Counter[str] = Counter()
        self.subscriptions = 0
        self.closed_total = 0
        self._last_warning = float("-inf")

    @property
    def connected(self) -> int:
        return len(self._peers)

    @property
    def subscribers(self) -> int:
        return len(self._subscribed)

    @property
    def refused(self) -> int:
        return sum(self.refused_by.values())

    def _entry(self, fd: int) -> Counter[str]:
        counts = self._peers.get(fd)
        if counts is None:
            counts = self._peers[fd] = Counter()
            self._silent[fd] = None
        return counts

    def accepted(self, fd: int) -> str | None:
        """Follow one accepted connection. Above accept_pause_threshold open connections, it displaces the
        one that has gone longest without subscribing at once; below, the publisher's loop brings the count
        down to max_connections (`enforce`) once the notices that have arrived are judged (rule 4). Returns
        TOO_MANY_CONNECTIONS if it disconnected one."""
        self._gone.discard(fd)
        self._entry(fd)  # its first notice may have been read before this event
        return self._displace_down_to(self.limits.accept_pause_threshold)

    def enforce(self) -> str | None:
        """Rule 4: while more than max_connections are open, disconnect the one that has gone longest without
        subscribing (a subscriber is never displaced). Judge the notices that have arrived first. Returns
        TOO_MANY_CONNECTIONS if it disconnected any."""
        return self._displace_down_to(self.limits.max_connections)

    def _displace_down_to(self, limit: int) -> str | None:
        reason = None
        while (open_now := len(self._peers) - len(self._cut)) > limit:
            victim = next(iter(self._silent), None)
            if victim is None:  # every open connection has subscribed: rule 3 keeps them within the cap
                break
            reason = self._refuse(victim, TOO_MANY_CONNECTIONS, f"{open_now} connections")
        return reason

    def closed(self, fd: int) -> None:
        self._gone.add(fd)
        self._subscribed.discard(fd)
        self._cut.discard(fd)
        self._silent.pop(fd, None)
        if self._peers.pop(fd, None) is not None:
            self.closed_total += 1

    def subscription(self, fd: int | None, notice: bytes) -> str | None:
        """Judge one notice. `fd` None: a notice ZeroMQ made itself (the unsubscriptions of a closed peer)."""
        if notice[:1] != b"\x01" or fd is None:
            return None
        self.subscriptions += 1
        if fd in self._gone:  # sent before its connection closed
            return None
        counts = self._entry(fd)
        if counts["refused"]:  # already disconnected: what it sent before that is not judged again
            return None
        counts["subscriptions"] += 1
        prefix = notice[1:]
        if not prefix_allowed(prefix, self.limits.max_prefix_bytes):
            return self._refuse(fd, BAD_PREFIX, f"subscription {prefix[:24]!r}... ({len(prefix)} bytes)")
        if counts["subscriptions"] > self.limits.max_subscriptions_per_peer:
            return self._refuse(fd, TOO_MANY_SUBSCRIPTIONS, f"{counts['subscriptions']} subscriptions")
        if fd not in self._subscribed:
            if len(self._subscribed) >= self.limits.max_subscribers:
                return self._refuse(fd, TOO_MANY_SUBSCRIBERS, f"{len(self._subscribed)} subscribers already")
            self._subscribed.add(fd)
            self._silent.pop(fd, None)
        return None

    def _refuse(self, fd: int, reason: str, detail: str) -> str:
        self.refused_by[reason] += 1
        self._entry(fd)["refused"] += 1
        self._subscribed.discard(fd)
        self._silent.pop(fd, None)
        self._cut.add(fd)
        disconnected = disconnect(fd, self._local)
        now = time.monotonic()
        if now - self._last_warning >= WARN_INTERVAL_S:
            self._last_warning = now
            log.warning(
                "refused a subscriber (%s: %s)%s; %d refused so far (counted in health, queue subscriber_guard)",
                reason, detail, "" if disconnected else " but could not disconnect it", self.refused,
            )
        return reason


def local_address(endpoint: str) -> LocalAddress | None:
    """What the connections a publisher bound at `endpoint` (its LAST_ENDPOINT) have as local address: the TCP
    port, or the IPC path. None for inproc (no descriptors: nothing to guard)."""
    transport, _, rest = endpoint.partition("://")
    if transport == "tcp":
        return LocalAddress("tcp", int(rest.rpartition(":")[2]))
    if transport == "ipc":
        return LocalAddress("ipc", rest)
    return None


@dataclass(frozen=True)
class LocalAddress:
    transport: str  # "tcp" | "ipc"
    where: int | str  # the TCP port | the IPC path

    def matches(self, sock: socket.socket) -> bool:
        name = sock.getsockname()
        if self.transport == "tcp":
            return sock.family in (socket.AF_INET, socket.AF_INET6) and name[1] == self.where
        return sock.family == socket.AF_UNIX and name == self.where


def source_fd(notice: zmq.Frame) -> int | None:
    """The descriptor of the connection a subscription came from (ZMQ_SRCFD), or None where ZeroMQ has none
    (inproc, and the unsubscriptions ZeroMQ makes itself when a peer leaves)."""
    try:
        return int(notice.get(zmq.SRCFD))
    except zmq.ZMQError:
        return None


def disconnect(fd: int, local: LocalAddress) -> bool:
    """shutdown(2) the connection on descriptor `fd` if, and only if, it is a connected socket whose local
    address is the publisher's own. ZeroMQ sees the connection end and cleans up after it. True if done."""
    # the descriptor itself, not a duplicate: this must work when the process is out of descriptors, which is
    # when cutting connections matters most
    try:
        sock = socket.socket(fileno=fd)
    except OSError:  # closed meanwhile, or not a socket
        return False
    try:
        if not local.matches(sock):
            return False
        sock.getpeername()  # the listener itself has no peer: never shut it down
        sock.shutdown(socket.SHUT_RDWR)
        return True
    except OSError:
        return False
    finally:
        sock.detach()  # ZeroMQ owns the descriptor: never close it
