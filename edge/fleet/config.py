"""Frozen, validated configuration of the NATS side: the connection, the JetStream stream, the bridge."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from edge.fleet.creds import check_creds_file
from edge.fleet.errors import FleetConfigError
from edge.fleet.subjects import check_token
from edge.publish.config import parse_endpoint

NATS_SCHEMES = ("nats", "tls", "ws", "wss")
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
DAY_S = 86_400.0


def check_nats_url(url: str) -> tuple[str, ...]:
    """The servers of a `--nats` value (comma-separated URLs), each `nats://[user:pass@]host:port`."""
    servers = tuple(s.strip() for s in url.split(",") if s.strip())
    if not servers:
        raise FleetConfigError("--nats is empty: give a server URL such as nats://127.0.0.1:4222")
    for server in servers:
        try:
            parts = urlsplit(server)
            port = parts.port
        except ValueError as exc:
            raise FleetConfigError(f"--nats {server!r}: {exc}; use nats://HOST:PORT") from None
        if parts.scheme not in NATS_SCHEMES or not parts.hostname:
            raise FleetConfigError(
                f"--nats {server!r} is not a NATS URL: use nats://HOST:PORT (or tls://, ws://, wss://)"
            )
        if port == 0:
            raise FleetConfigError(f"--nats {server!r}: port 0 is not a server port (NATS listens on 4222)")
    return servers


def _check_file(path: Path | None, flag: str) -> None:
    if path is not None and not path.is_file():
        raise FleetConfigError(f"{flag} {path}: no such file")


@dataclass(frozen=True)
class NatsConfig:
    """How to reach NATS. `url`: one or more comma-separated server URLs (credentials may ride in them,
    nats://user:pass@host:4222, as nats-py takes them); `creds_file`: a NATS `.creds` file (a user JWT + its NKey
    seed, checked here; needs the `nkeys` package); `tls_*`: a CA bundle to verify the server and an optional client certificate
    and key; `connect_timeout_s`: per attempt; `name`: how the connection shows in the server's monitoring;
    `js_domain`: the JetStream domain whose API to use (a hub's JetStream seen through a leaf node)."""

    url: str = DEFAULT_NATS_URL
    creds_file: Path | None = None
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    connect_timeout_s: float = 3.0
    name: str = "qamoe"
    js_domain: str | None = None  # the JetStream domain (a hub reached through a leaf node: docs/FLEET.md)

    def __post_init__(self) -> None:
        check_nats_url(self.url)
        _check_file(self.creds_file, "--nats-creds")
        if self.creds_file is not None:
            check_creds_file(self.creds_file)  # nats-py would hang on some malformed files (edge/fleet/creds.py)
        _check_file(self.tls_ca, "--nats-tls-ca")
        _check_file(self.tls_cert, "--nats-tls-cert")
        _check_file(self.tls_key, "--nats-tls-key")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise FleetConfigError("--nats-tls-cert and --nats-tls-key go together: pass both or neither")
        if not (math.isfinite(self.connect_timeout_s) and 0.1 <= self.connect_timeout_s <= 60):
            raise FleetConfigError(f"connect timeout {self.connect_timeout_s}: choose 0.1-60 s")
        if self.js_domain is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", self.js_domain):
            raise FleetConfigError(f"--nats-domain {self.js_domain!r}: use 1-64 of A-Z a-z 0-9 _ - (the hub's "
                                   "`jetstream { domain: ... }`)")

    @property
    def servers(self) -> tuple[str, ...]:
        return check_nats_url(self.url)

    @property
    def uses_tls(self) -> bool:
        return self.tls_ca is not None or self.tls_cert is not None or any(
            s.startswith(("tls://", "wss://")) for s in self.servers)


@dataclass(frozen=True)
class StreamSettings:
    """The JetStream stream the bridge creates, or checks when it exists: one stream for all of qamoe.v1.
    Retention by age and size (limits: the oldest messages go first); `duplicate_window_s`: how long
    JetStream remembers a `Nats-Msg-Id` (a message re-sent within it is stored once)."""

    name: str = "QAMOE"
    subjects: tuple[str, ...] = ("qamoe.v1.>",)
    max_age_s: float = 7 * DAY_S
    max_bytes: int = 1 << 30
    duplicate_window_s: float = 120.0

    def __post_init__(self) -> None:
        check_token(self.name, "--stream")
        if not self.subjects:
            raise FleetConfigError("a stream needs at least one subject, e.g. qamoe.v1.>")
        if not (math.isfinite(self.max_age_s) and self.max_age_s >= 1):
            raise FleetConfigError(f"--max-age {self.max_age_s}: give at least 1 s (e.g. 604800 for a week)")
        if self.max_bytes < 1024:
            raise FleetConfigError(f"--max-bytes {self.max_bytes}: give at least 1024 bytes")
        if not (math.isfinite(self.duplicate_window_s) and 1 <= self.duplicate_window_s <= self.max_age_s):
            raise FleetConfigError(
                f"--duplicate-window {self.duplicate_window_s}: give 1 s up to --max-age ({self.max_age_s:g} s)"
            )


@dataclass(frozen=True)
class BridgeConfig:
    """One bridge: ZeroMQ `endpoints` (one per node) -> NATS.

    site, bridge_id      subject tokens ([A-Za-z0-9_-]{1,64}); the bridge's health goes to qamoe.v1.health.site.id
    source_id            replaces each message's source_id in the subject (a token; None: sanitise the message's)
    curve_*              CURVE keys to read a node that requires them (as qamoe-tap's options)
    buffer_capacity      messages held while NATS is away; full, the oldest is dropped and counted
    batch                messages in flight to JetStream at once (acks are awaited per batch)
    ack_timeout_s        how long to wait for JetStream's acks before sending a batch again (ids de-duplicate)
    backoff_*_s          reconnect backoff to NATS: doubling from initial up to max
    zmq_reconnect_*_ms   ZeroMQ's reconnect interval to the node, doubling up to the max
    health_interval_s    how often the bridge publishes its health
    resume               look up the last stored seq of each subject at first sight, so a gap across a bridge
                         restart is counted as lost upstream too
    """

    endpoints: tuple[str, ...] = ("tcp://127.0.0.1:5556",)
    site: str = "local"
    bridge_id: str = "bridge"
    nats: NatsConfig = field(default_factory=NatsConfig)
    stream: StreamSettings = field(default_factory=StreamSettings)
    source_id: str | None = None
    curve_server_public_key_file: Path | None = None
    curve_client_secret_key_file: Path | None = None
    buffer_capacity: int = 10_000
    batch: int = 256
    ack_timeout_s: float = 5.0
    backoff_initial_s: float = 0.1
    backoff_max_s: float = 5.0
    zmq_reconnect_ms: int = 5
    zmq_reconnect_max_ms: int = 250  # a node that restarts is read again within ~0.25 s of its bind
    health_interval_s: float = 1.0
    resume: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "endpoints", tuple(self.endpoints))
        if not self.endpoints:
            raise FleetConfigError("no ZeroMQ endpoint to read: pass --endpoint tcp://HOST:PORT")
        for ep in self.endpoints:
            parse_endpoint(ep)
        check_token(self.site, "--site")
        check_token(self.bridge_id, "--bridge-id")
        if self.source_id is not None:
            check_token(self.source_id, "--source-id")
            if len(self.endpoints) > 1:
                raise FleetConfigError("--source-id names one node: give one --endpoint with it")
        self._check_numbers()

    def _check_numbers(self) -> None:
        if not 1 <= self.buffer_capacity <= 10_000_000:
            raise FleetConfigError(f"--buffer {self.buffer_capacity}: choose 1-10000000 messages")
        if not 1 <= self.batch <= 10_000:
            raise FleetConfigError(f"batch {self.batch}: choose 1-10000 messages")
        for name, value, low, high in (
            ("ack timeout", self.ack_timeout_s, 0.1, 120.0),
            ("backoff initial", self.backoff_initial_s, 0.01, 60.0),
            ("backoff max", self.backoff_max_s, self.backoff_initial_s, 600.0),
            ("health interval", self.health_interval_s, 0.05, 3600.0),
        ):
            if not (math.isfinite(value) and low <= value <= high):
                raise FleetConfigError(f"{name} {value}: choose {low:g}-{high:g} s")
        if not 1 <= self.zmq_reconnect_ms <= self.zmq_reconnect_max_ms <= 60_000:
            raise FleetConfigError("ZeroMQ reconnect: choose 1 <= interval <= max <= 60000 ms")
