"""The access token: made, required, read from a request target and compared in constant time."""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import parse_qs, urlsplit

from edge.web.config import check_host, host_is_loopback
from edge.web.errors import WebConfigError

_DUMMY = b"\0" * 32  # compared against when no token came, so a missing one takes as long as a wrong one


def generate_token() -> str:
    """A fresh random token: 32 URL-safe characters (192 bits)."""
    return secrets.token_urlsafe(24)


def resolve_token(given: str | None, host: str) -> tuple[str, bool]:
    """(the token to use, whether it was generated). A bind that faces the network needs one given by the
    user: a generated one would be printed on a terminal that the remote viewer does not see anyway, and an
    explicit one is a decision to expose the view."""
    check_host(host)
    if given:
        return given, False
    if not host_is_loopback(host):
        raise WebConfigError(
            f"--host {host} faces the network: pass an access token (--token or the QAMOE_WEB_TOKEN "
            "environment variable, 16+ URL-safe characters) that remote viewers will need"
        )
    return generate_token(), True


def token_matches(given: str | None, expected: str) -> bool:
    """True when `given` is exactly `expected`; compared in constant time (hmac.compare_digest)."""
    want = expected.encode("utf-8")
    if given is None:
        hmac.compare_digest(_DUMMY, want)
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), want)


def token_in(target: str) -> str | None:
    """The `token` query parameter of a request target (`/ws?token=...`), or None (also when given twice)."""
    values = parse_qs(urlsplit(target).query, keep_blank_values=True).get("token", [])
    return values[0] if len(values) == 1 else None
