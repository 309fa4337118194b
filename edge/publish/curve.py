"""ZeroMQ CURVE: key files, the server/client socket options and the ZAP allow-list of client keys.

Key files use the ZeroMQ certificate (ZPL) layout, so `zmq.auth.load_certificate` and other ZeroMQ tools read them:
`NAME.key` holds the public key (safe to share), `NAME.key_secret` both keys (mode 0600, never share).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from edge.publish.errors import CurveKeyError

log = logging.getLogger(__name__)

PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
GENERATE_HINT = "create one with `qamoe-keys generate DIR --name NAME`"


@dataclass(frozen=True)
class KeyPairFiles:
    public: Path
    secret: Path


def generate_keypair(directory: Path, name: str, *, overwrite: bool = False) -> KeyPairFiles:
    """Write DIR/NAME.key (public) and DIR/NAME.key_secret (0600) from a fresh `zmq.curve_keypair()`."""
    if not _NAME.match(name):
        raise CurveKeyError(
            f"key name {name!r}: use 1-64 letters, digits, '_', '.' or '-' (e.g. --name server)"
        )
    if not zmq.has("curve"):
        raise CurveKeyError(
            "this libzmq was built without CURVE support: install pyzmq from its official wheels"
        )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    files = KeyPairFiles(directory / f"{name}{PUBLIC_SUFFIX}", directory / f"{name}{SECRET_SUFFIX}")
    existing = [str(p) for p in (files.public, files.secret) if p.exists()]
    if existing and not overwrite:
        raise CurveKeyError(
            f"{', '.join(existing)} already exist: choose another --name or pass --force to replace"
        )
    public, secret = zmq.curve_keypair()
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    _write(files.public, _certificate(name, stamp, public, None), mode=0o644)
    _write(files.secret, _certificate(name, stamp, public, secret), mode=0o600)
    log.info("wrote CURVE key pair %s / %s", files.public, files.secret)
    return files


def _certificate(name: str, stamp: str, public: bytes, secret: bytes | None) -> str:
    kind = (
        "secret (keep private: mode 0600, never copy it off this machine)" if secret else "public (shareable)"
    )
    lines = [
        f"#   qamoe-live CURVE {kind} certificate {name!r}, generated {stamp} by qamoe-keys",
        "#   ZeroMQ certificate layout: readable by zmq.auth.load_certificate",
        "",
        "metadata",
        f'    name = "{name}"',
        "curve",
        f'    public-key = "{public.decode("ascii")}"',
    ]
    if secret is not None:
        lines.append(f'    secret-key = "{secret.decode("ascii")}"')
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str, *, mode: int) -> None:
    path.unlink(missing_ok=True)
    # Created with its final mode, so the secret is never world-readable, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(text)


def load_public_key(path: Path) -> bytes:
    """The Z85 public key of a `.key` or `.key_secret` file."""
    return _load(path)[0]


def load_secret_pair(path: Path) -> tuple[bytes, bytes]:
    """(public, secret) Z85 keys of a `.key_secret` file."""
    public, secret = _load(path)
    if secret is None:
        raise CurveKeyError(
            f"{path} holds no secret key: pass the NAME{SECRET_SUFFIX} file, not NAME{PUBLIC_SUFFIX}"
        )
    return public, secret


def _load(path: Path) -> tuple[bytes, bytes | None]:
    try:
        public, secret = zmq.auth.load_certificate(Path(path))
    except (OSError, ValueError) as exc:
        raise CurveKeyError(f"cannot read CURVE key file {path} ({exc}): {GENERATE_HINT}") from exc
    for key in (public, secret):
        if key is not None and len(key) != 40:
            raise CurveKeyError(f"{path} holds a malformed key (not 40 Z85 characters): {GENERATE_HINT}")
    return public, secret


def find_secret_file(path: Path) -> Path:
    """A `.key_secret` file given itself or a directory holding exactly one."""
    path = Path(path)
    if path.is_file():
        return path
    found = sorted(path.glob(f"*{SECRET_SUFFIX}")) if path.is_dir() else []
    if len(found) != 1:
        what = "no" if not found else f"{len(found)}"
        raise CurveKeyError(
            f"{path}: expected one *{SECRET_SUFFIX} file, found {what}; pass the file itself or "
            f"{GENERATE_HINT}"
        )
    return found[0]


def allowed_client_keys(directory: Path) -> list[bytes]:
    """The public keys in DIR/*.key; an allow-list that admits nobody is refused."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CurveKeyError(
            f"allowed-clients directory {directory} does not exist: create it and copy each "
            f"client's NAME{PUBLIC_SUFFIX} into it"
        )
    keys = [load_public_key(p) for p in sorted(directory.glob(f"*{PUBLIC_SUFFIX}"))]
    if not keys:
        raise CurveKeyError(
            f"{directory} holds no client public keys (*{PUBLIC_SUFFIX}), so no one could subscribe: "
            f"{GENERATE_HINT} on the client and copy its NAME{PUBLIC_SUFFIX} here"
        )
    return keys


def start_authenticator(context: zmq.Context, allowed_dir: Path) -> ThreadAuthenticator:
    """A ZAP handler on `context` admitting only the CURVE clients whose public keys are in `allowed_dir`."""
    keys = allowed_client_keys(allowed_dir)
    auth = ThreadAuthenticator(context, log=logging.getLogger(f"{__name__}.zap"))
    auth.start()
    auth.configure_curve(domain="*", location=str(allowed_dir))
    log.info("CURVE on: %d allowed client key(s) from %s", len(keys), allowed_dir)
    return auth


def make_server(socket: zmq.Socket, secret_file: Path) -> None:
    """Make `socket` a CURVE server with this key pair (before bind)."""
    public, secret = load_secret_pair(secret_file)
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.curve_server = True


def make_client(socket: zmq.Socket, server_public_file: Path, client_secret_file: Path) -> None:
    """Make `socket` a CURVE client of the server whose public key is in `server_public_file` (before connect)."""
    public, secret = load_secret_pair(client_secret_file)
    socket.curve_serverkey = load_public_key(server_public_file)
    socket.curve_publickey = public
    socket.curve_secretkey = secret
