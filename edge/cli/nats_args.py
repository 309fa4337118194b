"""The NATS options shared by `qamoe-bridge`, `qamoe-live --nats` and `qamoe-tap --nats` (nats-py's
conventions: credentials in the URL or a .creds file, TLS from a CA bundle and an optional client pair).

`edge.fleet` (and with it nats-py) is imported only when the options are used: qamoe-live and qamoe-tap
without --nats never load it."""

from __future__ import annotations

import argparse
import re
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from edge.errors import UsageError

if TYPE_CHECKING:
    from edge.fleet.config import NatsConfig, StreamSettings

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"  # edge.fleet.config.DEFAULT_NATS_URL, without importing nats-py

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE = re.compile(r"\s*(\d+)\s*([KMGT]?)(i?B)?\s*", re.IGNORECASE)


class OptionError(UsageError, ValueError):
    """A duration or size option that does not parse (exit 2)."""


def parse_duration(text: str, flag: str) -> float:
    """`90`, `90s`, `15m`, `6h`, `7d` -> seconds."""
    m = _DURATION.fullmatch(text)
    if not m:
        raise OptionError(f"{flag} {text!r}: give seconds or a number with s, m, h or d (e.g. 7d)")
    return float(m[1]) * _UNITS[m[2]]


def parse_size(text: str, flag: str) -> int:
    """`1048576`, `512M`, `1G`, `2GiB` -> bytes (binary multiples)."""
    m = _SIZE.fullmatch(text)
    if not m:
        raise OptionError(f"{flag} {text!r}: give bytes or a number with K, M, G or T (e.g. 1G)")
    return int(m[1]) << (10 * " KMGT".index(m[2].upper() or " "))


def add_nats_arguments(p: argparse.ArgumentParser, *, url_default: str | None = DEFAULT_NATS_URL) -> None:
    g = p.add_argument_group("NATS")
    g.add_argument("--nats", default=url_default, metavar="URL",
                   help="NATS server URL(s), comma-separated; credentials may ride in it (nats://user:pass@host:4222)"
                   + (f" (default {url_default})" if url_default else ""))
    g.add_argument("--nats-creds", type=Path, metavar="FILE", help="a NATS .creds file (JWT + NKey seed)")
    g.add_argument("--nats-tls-ca", type=Path, metavar="FILE", help="CA bundle to verify the server (enables TLS)")
    g.add_argument("--nats-tls-cert", type=Path, metavar="FILE", help="client certificate (with --nats-tls-key)")
    g.add_argument("--nats-tls-key", type=Path, metavar="FILE", help="client private key")
    g.add_argument("--nats-timeout", type=float, default=3.0, metavar="S",
                   help="connection timeout per attempt (default 3 s)")
    g.add_argument("--stream", default="QAMOE", help="JetStream stream name (default QAMOE)")
    g.add_argument("--nats-domain", default=None, metavar="DOMAIN",
                   help="the JetStream domain of the stream (a hub reached through a site's leaf node)")


def add_stream_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("JetStream stream (created if missing, else checked)")
    g.add_argument("--max-age", default="7d", help="keep messages this long (s, m, h, d; default 7d)")
    g.add_argument("--max-bytes", default="1G", help="keep at most this much, oldest out first (default 1G)")
    g.add_argument("--duplicate-window", default="2m",
                   help="how long a Nats-Msg-Id is remembered for de-duplication (default 2m)")


def nats_config(args: argparse.Namespace, name: str) -> NatsConfig:
    from edge.fleet.config import NatsConfig

    return NatsConfig(url=args.nats, creds_file=args.nats_creds, tls_ca=args.nats_tls_ca,
                      tls_cert=args.nats_tls_cert, tls_key=args.nats_tls_key,
                      connect_timeout_s=args.nats_timeout, name=name, js_domain=args.nats_domain)


def stream_settings(args: argparse.Namespace) -> StreamSettings:
    from edge.fleet.config import StreamSettings

    return StreamSettings(
        name=args.stream, max_age_s=parse_duration(args.max_age, "--max-age"),
        max_bytes=parse_size(args.max_bytes, "--max-bytes"),
        duplicate_window_s=parse_duration(args.duplicate_window, "--duplicate-window"),
    )


def default_bridge_id() -> str:
    """This host's name as a subject token (`bridge` when nothing usable is left)."""
    name = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname().split(".")[0])[:64].strip("-")
    return name or "bridge"
