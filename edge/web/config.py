"""`WebConfig`: where the page server listens, its access token and the bounds on what it keeps."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from edge.web.errors import WebConfigError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
TOKEN_MIN_CHARS = 16
TOKEN_MAX_CHARS = 256
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]+")  # URL-safe: it travels in the page's address unescaped


def host_is_loopback(host: str) -> bool:
    """True when only this machine can reach `host` (127.0.0.0/8, ::1, `localhost`)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_host(host: str) -> None:
    """Raise WebConfigError unless `host` is an IP address or `localhost` (names are not resolved: a bind
    address should say which interface it is)."""
    if host == "localhost":
        return
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise WebConfigError(
            f"--host {host!r} is not an IP address: give one of this machine's addresses, "
            "127.0.0.1 (default, this machine only) or 0.0.0.0 (every interface)"
        ) from None


def check_token(token: str) -> None:
    """Raise WebConfigError unless `token` is 16-256 URL-safe characters ([A-Za-z0-9_-])."""
    if not TOKEN_MIN_CHARS <= len(token) <= TOKEN_MAX_CHARS or not TOKEN_PATTERN.fullmatch(token):
        raise WebConfigError(
            f"the access token must be {TOKEN_MIN_CHARS}-{TOKEN_MAX_CHARS} characters of A-Z a-z 0-9 _ - "
            f"(got {len(token)} characters): leave --token out to have one generated, or make one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(24))'`"
        )


@dataclass(frozen=True)
class WebConfig:
    """How `qamoe-web` serves the page.

    token            the access token every page load and WebSocket must carry (`?token=`)
    host, port       where to listen: loopback by default; port 0 asks the OS for a free one
    trace_points     sentiment points kept for a browser that (re)connects (600: 5 min at a 0.5 s hop)
    transcript_lines transcript messages kept for it
    inbox_capacity   messages held between the ZeroMQ thread and the server loop (drop-oldest, counted)
    max_viewers      WebSocket connections at once; one more is answered 503
    viewer_backlog   updates waiting for one viewer's send; past that it is sent the whole state instead
    frames           show the node's camera frames (qamoe-web --frames; the node must also share them with
                     qamoe-live --share-frames). False: frames are not even subscribed to, and none reaches a page
    """

    token: str
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    trace_points: int = 600
    transcript_lines: int = 100
    inbox_capacity: int = 256
    max_viewers: int = 64
    viewer_backlog: int = 16
    frames: bool = False

    def __post_init__(self) -> None:
        check_token(self.token)
        check_host(self.host)
        if not 0 <= self.port <= 65535:
            raise WebConfigError(f"--port {self.port}: choose 1-65535, or 0 for any free port")
        for name, lo, hi in (
            ("trace_points", 10, 100_000),
            ("transcript_lines", 1, 10_000),
            ("inbox_capacity", 1, 100_000),
            ("max_viewers", 1, 10_000),
            ("viewer_backlog", 1, 10_000),
        ):
            value = getattr(self, name)
            if not lo <= value <= hi:
                raise WebConfigError(f"{name}={value}: choose {lo}-{hi}")

    @property
    def is_loopback(self) -> bool:
        return host_is_loopback(self.host)
