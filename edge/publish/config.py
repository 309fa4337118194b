"""`PublisherConfig` and the bind-address policy: loopback unless the user explicitly says otherwise."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from edge.publish.errors import BindPolicyError, PublishConfigError
from edge.publish.guard import SubscriberLimits

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5556"
LOCAL_TRANSPORTS = ("ipc", "inproc")  # never reachable from another machine
_LOOPBACK_NAMES = ("localhost", "lo")


@dataclass(frozen=True)
class Endpoint:
    """A ZeroMQ endpoint split once: `tcp://127.0.0.1:5556` -> transport tcp, host 127.0.0.1, port "5556"."""

    url: str
    transport: str
    host: str
    port: str  # "" for ipc/inproc; "*" or "0" asks the OS for a free port

    @property
    def is_local(self) -> bool:
        """True when only this machine can connect (loopback TCP, ipc, inproc)."""
        if self.transport in LOCAL_TRANSPORTS:
            return True
        if self.host in _LOOPBACK_NAMES:
            return True
        try:
            return ipaddress.ip_address(self.host.strip("[]")).is_loopback
        except ValueError:
            return False  # "*", an interface name or a hostname: assume it faces the network

    @property
    def is_ipv6(self) -> bool:
        return self.host.startswith("[")


def parse_endpoint(url: str) -> Endpoint:
    """Parse `tcp://HOST:PORT`, `ipc://PATH` or `inproc://NAME`; raise PublishConfigError naming the form."""
    transport, sep, rest = url.partition("://")
    if not sep or not rest:
        raise PublishConfigError(f"endpoint {url!r} is not a ZeroMQ endpoint: use tcp://127.0.0.1:5556")
    if transport in LOCAL_TRANSPORTS:
        return Endpoint(url, transport, "", "")
    if transport != "tcp":
        raise PublishConfigError(
            f"endpoint {url!r}: transport {transport!r} is not supported; use tcp://HOST:PORT"
        )
    host, colon, port = rest.rpartition(":")
    if not colon or not host or not (port == "*" or (port.isdigit() and 0 <= int(port) <= 65535)):
        raise PublishConfigError(
            f"endpoint {url!r} needs a host and a port 0-65535 (or * for any free port): tcp://127.0.0.1:5556"
        )
    return Endpoint(url, transport, host, port)


@dataclass(frozen=True)
class PublisherConfig:
    """How the ZeroMQ PUB socket is bound.

    endpoint        where to bind; loopback by default so nothing leaves the machine
    send_hwm        per-subscriber send queue length (messages); small so a slow subscriber costs drops, not memory
    linger_ms       how long close() waits to flush queued messages (0: drop them, close never hangs)
    allow_remote    must be True to bind anything but loopback/ipc/inproc
    curve_server_secret_key_file  this publisher's CURVE secret certificate (`qamoe-keys generate`)
    curve_allowed_clients_dir     directory of client public certificates (*.key); only those may subscribe
    validate_messages  check every payload against its JSON Schema before sending (about 0.1-0.3 ms each)
    block_ms        0 (live): a subscriber whose queue is full misses the message once the socket thread's drain
                    budget (5% of its time, at most 0.2 s saved up) is spent (the others get it).
                    > 0 (fast replay, where no clock is waiting): first wait up to this long for it to catch up
    heartbeat_ivl_ms, heartbeat_timeout_ms  ZMTP heartbeats: a subscriber that stops answering them (a dead
                    peer, a frozen process) is disconnected after about ivl + timeout (0 ivl turns them off)
    limits          what a peer may send and how many may connect (`edge.publish.guard.SubscriberLimits`)
    """

    endpoint: str = DEFAULT_ENDPOINT
    send_hwm: int = 8
    linger_ms: int = 0
    allow_remote: bool = False
    curve_server_secret_key_file: Path | None = None
    curve_allowed_clients_dir: Path | None = None
    validate_messages: bool = True
    block_ms: int = 0
    heartbeat_ivl_ms: int = 1000
    heartbeat_timeout_ms: int = 2000
    limits: SubscriberLimits = field(default_factory=SubscriberLimits)

    def __post_init__(self) -> None:
        if not isinstance(self.block_ms, int) or self.block_ms < 0:
            raise PublishConfigError(f"block_ms={self.block_ms!r}: use 0 (never wait) or a positive number of ms")
        ep = parse_endpoint(self.endpoint)
        if not 1 <= self.send_hwm <= 100_000:
            raise PublishConfigError(f"send_hwm={self.send_hwm}: choose 1-100000 messages (default 8)")
        if not 0 <= self.linger_ms <= 60_000:
            raise PublishConfigError(
                f"linger_ms={self.linger_ms}: choose 0-60000 ms (default 0, never hangs)"
            )
        if not 0 <= self.heartbeat_ivl_ms <= 600_000 or not 0 < self.heartbeat_timeout_ms <= 600_000:
            raise PublishConfigError(
                f"heartbeat_ivl_ms={self.heartbeat_ivl_ms}, heartbeat_timeout_ms={self.heartbeat_timeout_ms}: "
                "choose 0-600000 (0 ivl: off) and 1-600000 ms (defaults 1000 and 2000)"
            )
        if (self.curve_server_secret_key_file is None) != (self.curve_allowed_clients_dir is None):
            raise PublishConfigError(
                "CURVE needs both curve_server_secret_key_file and curve_allowed_clients_dir "
                "(qamoe-live --curve-server-key and --curve-clients); pass both or neither"
            )
        if not ep.is_local and not self.allow_remote:
            raise BindPolicyError(
                f"refusing to bind {self.endpoint}: it is not a loopback address and would expose the stream to "
                "the network; pass allow_remote=True (`--allow-remote`), ideally with CURVE keys "
                "(`qamoe-keys generate`), or bind tcp://127.0.0.1:PORT"
            )

    @property
    def parsed_endpoint(self) -> Endpoint:
        return parse_endpoint(self.endpoint)

    @property
    def curve_enabled(self) -> bool:
        return self.curve_server_secret_key_file is not None


def exposure_warning(config: PublisherConfig) -> str | None:
    """The warning to log when the stream is reachable from the network without authentication, else None."""
    if config.parsed_endpoint.is_local or config.curve_enabled:
        return None
    return (
        f"publishing on {config.endpoint} WITHOUT authentication or encryption: anyone on the network can read "
        "the stream (sentiment and transcripts); enable CURVE (`qamoe-keys generate`, --curve-server-key, "
        "--curve-clients) or bind tcp://127.0.0.1:PORT"
    )
