"""A NATS `.creds` file (`--nats-creds`), checked before nats-py is handed it.

nats-py reads the file only while connecting, inside the event loop, and does not check it: a file without the
JWT marker line makes its reader loop forever (no timeout can interrupt it), and a missing or garbled seed comes
out as an nkeys exception from deep in the handshake. So the layout nats-py relies on is checked here, once, when
the configuration is built: the line after `-----BEGIN NATS USER JWT-----` is a user JWT, the line after
`-----BEGIN USER NKEY SEED-----` is a user seed (`SU...`), each ends with a newline, and the seed is the JWT's
user's. The server still decides whether it trusts that user (docs/FLEET.md, "Credentials and TLS")."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.fleet.errors import FleetConfigError

JWT_MARKER = b"BEGIN NATS USER JWT"  # the substrings nats-py looks for (nats.aio.client)
SEED_MARKER = b"BEGIN USER NKEY SEED"
MAX_BYTES = 64 * 1024  # nsc writes ~1-2 KB; a JWT with many permissions stays far below this


@dataclass(frozen=True)
class CredsUser:
    """Who a .creds file speaks for (for logs and errors; the seed is not kept)."""

    public_key: str
    name: str
    issuer: str


def check_creds_file(path: Path) -> CredsUser:
    """The user a readable, well-formed .creds file speaks for; FleetConfigError (exit 2) naming the fix."""
    flag = f"--nats-creds {path}"
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise FleetConfigError(f"{flag}: cannot read it ({exc.strerror or exc})") from None
    if len(raw) > MAX_BYTES:
        raise FleetConfigError(f"{flag}: larger than {MAX_BYTES // 1024} KiB, not a .creds file")
    if b"\r" in raw:
        raise FleetConfigError(f"{flag}: has Windows line endings (CRLF), which nats-py cannot read: convert "
                               "it (dos2unix) or write it again with `nsc generate creds`")
    lines = raw.split(b"\n")
    jwt = _line_after(lines, JWT_MARKER, flag, "-----BEGIN NATS USER JWT-----")
    seed = _line_after(lines, SEED_MARKER, flag, "-----BEGIN USER NKEY SEED-----")
    claims = _user_claims(jwt, flag)
    user = CredsUser(public_key=claims["sub"], name=str(claims.get("name", "")), issuer=str(claims.get("iss", "")))
    if _public_key_of_seed(seed, flag) != user.public_key:
        raise FleetConfigError(f"{flag}: its seed is not the key of the JWT's user {user.public_key}: the two "
                               "parts come from different users; write the file again with `nsc generate creds`")
    return user


def _line_after(lines: list[bytes], marker: bytes, flag: str, what: str) -> str:
    """The stripped line after the first line containing `marker`; it must end with a newline (nats-py drops
    its last byte) and be non-empty."""
    at = next((i for i, line in enumerate(lines) if marker in line), None)
    if at is None:
        raise FleetConfigError(f"{flag}: no {what} line, not a NATS .creds file (make one with "
                               "`nsc generate creds`)")
    if at + 2 > len(lines) - 1 or not lines[at + 1].strip():  # lines[-1] is what follows the last newline
        raise FleetConfigError(f"{flag}: nothing on the line after {what}, where nats-py reads it")
    try:
        return lines[at + 1].decode("ascii").strip()
    except UnicodeDecodeError:
        raise FleetConfigError(f"{flag}: the line after {what} is not ASCII") from None


def _b64url_json(part: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _user_claims(jwt: str, flag: str) -> dict[str, Any]:
    parts = jwt.split(".")
    try:
        if len(parts) != 3:
            raise ValueError("not three parts")
        header, claims = _b64url_json(parts[0]), _b64url_json(parts[1])
    except (ValueError, binascii.Error):
        raise FleetConfigError(f"{flag}: the user JWT does not decode (a JWT is three base64url parts joined "
                               "by dots): the file is damaged; write it again with `nsc generate creds`") from None
    if not (isinstance(header, dict) and isinstance(claims, dict)):
        raise FleetConfigError(f"{flag}: the user JWT does not decode to JSON objects")
    nats = claims.get("nats")
    if not isinstance(nats, dict):
        nats = {}
    kind = nats.get("type", claims.get("type"))  # v2 JWTs keep the type under `nats`, v1 at the top
    sub = claims.get("sub")
    if kind != "user" or not isinstance(sub, str) or not sub.startswith("U"):
        raise FleetConfigError(f"{flag}: its JWT is a {kind or 'typeless'} JWT, not a user's: a .creds file "
                               "holds a user JWT and that user's seed (`nsc generate creds -a ACCOUNT -n USER`)")
    return claims


def _public_key_of_seed(seed: str, flag: str) -> str:
    try:
        import nkeys  # nats-py[nkeys]; imported on use, as nats-py does
    except ModuleNotFoundError:
        raise FleetConfigError("--nats-creds needs the `nkeys` package: pip install 'nats-py[nkeys]'") from None
    if not seed.startswith("SU"):
        raise FleetConfigError(f"{flag}: the seed is not a user seed (it starts with {seed[:2]!r}, a user's with "
                               "'SU'): the file is damaged; write it again with `nsc generate creds`")
    try:
        pair = nkeys.from_seed(bytearray(seed.encode()))
        public = pair.public_key.decode()
        pair.wipe()
    except (nkeys.NkeysError, ValueError, binascii.Error, IndexError):
        raise FleetConfigError(f"{flag}: the user seed does not decode (bad length or characters): the file is "
                               "damaged; write it again with `nsc generate creds`") from None
    return str(public)
