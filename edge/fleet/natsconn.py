"""Connecting to NATS and setting up the JetStream stream, with every failure turned into a typed one-line
error (no hang: each step has a timeout; nats-py's own error reports go to this module's DEBUG log)."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import ssl
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

from edge.fleet.config import NatsConfig, StreamSettings
from edge.fleet.errors import FleetConfigError, NatsAuthError, NatsUnavailableError, StreamConflictError

log = logging.getLogger(__name__)
API_TIMEOUT_S = 5.0  # JetStream API requests (stream info/create, last message)
ASYNC_MAX_PENDING = 20_000  # un-acked JetStream publishes nats-py allows at once


class _TlsEofNoise(logging.Filter):
    """asyncio warns "returning true from eof_received() has no effect when using ssl" each time one of
    nats-py's TLS connections closes (its protocol asks for a half-open transport, which TLS cannot give):
    harmless, and otherwise a WARNING line on stderr at the end of every run over TLS."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "eof_received()" not in record.getMessage()


_TLS_EOF_NOISE = _TlsEofNoise()


def tls_context(cfg: NatsConfig) -> ssl.SSLContext | None:
    if not cfg.uses_tls:
        return None
    ctx = ssl.create_default_context(cafile=str(cfg.tls_ca) if cfg.tls_ca else None)
    if cfg.tls_cert is not None and cfg.tls_key is not None:
        try:
            ctx.load_cert_chain(str(cfg.tls_cert), str(cfg.tls_key))
        except (ssl.SSLError, OSError) as exc:
            raise FleetConfigError(f"--nats-tls-cert/--nats-tls-key: cannot load them ({exc})") from None
    return ctx


async def connect(cfg: NatsConfig, *, callbacks: dict[str, Any] | None = None) -> Client:
    """A connected client; nats-py's own reconnection is off (the bridge reconnects with its own backoff).
    Raises NatsAuthError, NatsUnavailableError or FleetConfigError; never waits past ~2 timeouts."""
    last: list[BaseException] = []

    async def on_error(exc: Exception) -> None:
        last.append(exc)
        log.debug("nats: %r", exc)

    options: dict[str, Any] = dict(
        servers=list(cfg.servers), name=cfg.name, connect_timeout=cfg.connect_timeout_s,
        allow_reconnect=False, max_reconnect_attempts=1, reconnect_time_wait=0.1, error_cb=on_error,
        tls=tls_context(cfg), ping_interval=5, max_outstanding_pings=2, **(callbacks or {}),
    )
    if cfg.creds_file is not None:
        options["user_credentials"] = str(cfg.creds_file)
    if options["tls"] is not None:
        logging.getLogger("asyncio").addFilter(_TLS_EOF_NOISE)  # once: addFilter skips a filter already there
    try:
        nc = await asyncio.wait_for(nats.connect(**options), 2 * cfg.connect_timeout_s + 2)
    except (TimeoutError, nats.errors.Error, OSError, ssl.SSLError) as exc:
        raise _connect_error(cfg, exc, last) from None
    except ModuleNotFoundError as exc:  # a .creds file needs the nkeys package
        raise FleetConfigError(f"--nats-creds needs the `{exc.name}` package: pip install 'nats-py[nkeys]'") from None
    if cfg.uses_tls and not _over_tls(nc):
        try:
            await nc.close()
        except (nats.errors.Error, OSError) as exc:
            log.debug("nats: closing the plain-text connection: %r", exc)
        where = ", ".join(_redact(s) for s in cfg.servers)
        raise NatsAuthError(f"NATS at {where} does not offer TLS, which a tls:// URL or --nats-tls-* asks for: "
                            "enable TLS on the server (a `tls {...}` block) or connect without the TLS options")
    return nc


def _over_tls(nc: Client) -> bool:
    """Whether the connection is encrypted. nats-py upgrades to TLS only when the server's INFO says
    `tls_required`, even for a tls:// URL with a TLS context: without this check a server (or anything in
    between) that does not offer TLS gets the stream in plain text. nats-py has no public accessor for it."""
    url = nc.connected_url
    if url is not None and url.scheme in ("ws", "wss"):
        return url.scheme == "wss"
    info = getattr(nc, "_server_info", None)
    return isinstance(info, dict) and bool(info.get("tls_required"))


def _connect_error(cfg: NatsConfig, exc: BaseException, seen: list[BaseException]) -> Exception:
    causes = [exc, *seen]
    text = "; ".join(dict.fromkeys(_describe(e) for e in causes if _describe(e)))
    where = ", ".join(_redact(s) for s in cfg.servers)
    if any(isinstance(e, nats.errors.AuthorizationError) or "authorization" in str(e).lower() for e in causes):
        return NatsAuthError(
            f"NATS at {where} refused the credentials: check the user/password in the URL, --nats-creds, "
            "or the server's authorization block"
        )
    if any(isinstance(e, ssl.SSLCertVerificationError) for e in causes):
        return NatsAuthError(f"TLS with NATS at {where} failed ({text}): the server's certificate is not trusted; "
                             "pass the CA that signed it with --nats-tls-ca")
    if _refused_handshake(cfg, causes):
        return NatsAuthError(
            f"TLS with NATS at {where} failed ({text}): the server ended the handshake; if it verifies clients "
            "(`verify: true`), pass a certificate its CA signed with --nats-tls-cert and --nats-tls-key"
        )
    if any(isinstance(e, nats.errors.SecureConnRequiredError) for e in causes):
        return NatsAuthError(f"NATS at {where} requires TLS ({text}): use a tls:// URL and --nats-tls-ca")
    return NatsUnavailableError(
        f"no NATS server answered at {where} within {cfg.connect_timeout_s:g} s ({text or 'no reply'}): "
        "is nats-server running (nats-server -js) and the URL right?"
    )


def _refused_handshake(cfg: NatsConfig, causes: list[BaseException]) -> bool:
    """The server answered, then broke off the TLS handshake: an alert (a client certificate missing or from
    a CA it does not trust), or, as often with TLS 1.3, where the client sees its handshake done before the
    server's verdict, the connection cut while nats-py waits for the server's first reply. A server that is
    not there at all refuses the TCP connection or times out instead."""
    if any(isinstance(e, ssl.SSLError) for e in causes):
        return True
    return cfg.uses_tls and any(
        isinstance(e, ConnectionResetError | BrokenPipeError | nats.errors.UnexpectedEOF) for e in causes)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return "" if isinstance(exc, nats.errors.NoServersError) else text


def _redact(url: str) -> str:
    """A server URL without its password, for messages."""
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1) if "://" in url else ("nats", url)
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"


async def jetstream(nc: Client, domain: str | None = None) -> JetStreamContext:
    """The JetStream context (of `domain`, when given); NatsUnavailableError when there is none."""
    js = nc.jetstream(timeout=API_TIMEOUT_S, publish_async_max_pending=ASYNC_MAX_PENDING, domain=domain)
    try:
        await js.account_info()
    except (nats.errors.NoRespondersError, nats.js.errors.ServiceUnavailableError,
            nats.js.errors.NoStreamResponseError, nats.errors.TimeoutError) as exc:
        where = f"JetStream domain {domain!r}" if domain else "JetStream"
        raise NatsUnavailableError(
            f"the NATS server has no {where} ({type(exc).__name__}): start it with `nats-server -js`, or, "
            "through a leaf node, name the hub's domain with --nats-domain"
        ) from None
    except nats.js.errors.APIError as exc:
        raise NatsUnavailableError(f"JetStream is not usable for this account: {exc}") from None
    return js


def stream_config(s: StreamSettings) -> StreamConfig:
    return StreamConfig(
        name=s.name, subjects=list(s.subjects), retention=RetentionPolicy.LIMITS, storage=StorageType.FILE,
        discard=DiscardPolicy.OLD, max_age=s.max_age_s, max_bytes=s.max_bytes,
        duplicate_window=s.duplicate_window_s, num_replicas=1,
    )


async def ensure_stream(js: JetStreamContext, s: StreamSettings) -> bool:
    """Create the stream, or check the existing one has these settings. True if it was created.
    StreamConflictError (nothing changed) when it differs or its subjects overlap another stream's."""
    try:
        info = await js.stream_info(s.name)
    except nats.js.errors.NotFoundError:
        try:
            await js.add_stream(stream_config(s))
        except nats.js.errors.BadRequestError as exc:
            raise StreamConflictError(
                f"cannot create stream {s.name} for {', '.join(s.subjects)}: {exc.description}; another "
                "stream already takes these subjects (`nats stream ls`), use it with --stream NAME"
            ) from None
        log.info("created JetStream stream %s (%s)", s.name, describe_settings(s))
        return True
    conflicts = stream_conflicts(info.config, s)
    if conflicts:
        raise StreamConflictError(
            f"stream {s.name} exists with other settings ({'; '.join(conflicts)}): pass the same values "
            f"(--max-age, --max-bytes, --duplicate-window), another --stream name, or change it with "
            f"`nats stream edit {s.name}`"
        )
    log.info("using JetStream stream %s (%s)", s.name, describe_settings(s))
    return False


def stream_conflicts(have: StreamConfig, want: StreamSettings) -> list[str]:
    """Differences that matter between an existing stream's config and the wanted settings."""
    out = []
    if sorted(have.subjects or []) != sorted(want.subjects):
        out.append(f"subjects {have.subjects} instead of {list(want.subjects)}")
    for name, value, wanted in (("max_age", have.max_age, want.max_age_s),
                                ("duplicate_window", have.duplicate_window, want.duplicate_window_s)):
        if value is None or not math.isclose(value, wanted, rel_tol=1e-6, abs_tol=1e-3):
            out.append(f"{name} {value:g} s instead of {wanted:g} s" if value is not None else f"no {name}")
    if have.max_bytes != want.max_bytes:
        out.append(f"max_bytes {have.max_bytes} instead of {want.max_bytes}")
    if have.retention not in (None, RetentionPolicy.LIMITS):
        out.append(f"retention {have.retention} instead of limits")
    return out


def describe_settings(s: StreamSettings) -> str:
    return (f"subjects {','.join(s.subjects)}, max age {s.max_age_s:g} s, max bytes {s.max_bytes}, "
            f"duplicate window {s.duplicate_window_s:g} s")


async def last_stored(js: JetStreamContext, stream: str, subject: str) -> dict[str, Any] | None:
    """The payload of the last message stored on `subject`, or None (none, or unreadable)."""
    try:
        raw = await js.get_last_msg(stream, subject)
    except (nats.js.errors.NotFoundError, nats.errors.TimeoutError):
        return None
    try:
        body = json.loads(raw.data or b"")
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
