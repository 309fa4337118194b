"""NATS subjects and de-duplication ids of the bridged stream.

    qamoe.v1.<topic>.<site>.<source>        e.g. qamoe.v1.sentiment.clinic-a.room_3
    qamoe.v1.health.<site>.<bridge-id>      the bridge's own health

A subject token may not hold `.` (the separator), `*` or `>` (wildcards), whitespace or control characters.
Tokens the user passes (site, bridge id, a `--source-id` override) must already be `[A-Za-z0-9_-]{1,64}`:
they are refused otherwise (`SubjectTokenError`, exit 2). The `source_id` inside a node's messages is free text
(a file path by default), so it is sanitised: every character outside `[A-Za-z0-9_-]` becomes `_`, it is cut to
48 characters, and when anything changed an 8-hex digest of the original is appended (`-1a2b3c4d`) so that two
sources that sanitise alike (`a.b`, `a b`) still get different subjects. An id with nothing left
(empty) cannot be bridged (`sanitise_source` returns None; the bridge counts it as rejected).
"""

from __future__ import annotations

import hashlib
import re

from edge.fleet.errors import SubjectTokenError

SUBJECT_PREFIX = "qamoe.v1"
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
SOURCE_CHARS = 48  # of a sanitised source id, before the digest
TOPIC_CHARS = 32


def check_token(value: str, what: str) -> str:
    """`value` if it is a valid user-given token, else SubjectTokenError naming `what` (e.g. "--site")."""
    if not isinstance(value, str) or not TOKEN_RE.fullmatch(value):
        raise SubjectTokenError(
            f"{what} {value!r} cannot be a NATS subject token: use 1-64 of A-Z a-z 0-9 _ - "
            "(no dots, spaces, '*' or '>')"
        )
    return value


def sanitise_source(source_id: object) -> str | None:
    """The subject token for a message's `source_id` (see the module doc); None when it is empty or not a str."""
    if not isinstance(source_id, str) or not source_id:
        return None
    safe = _UNSAFE.sub("_", source_id)[:SOURCE_CHARS]
    if safe == source_id:
        return safe
    digest = hashlib.sha256(source_id.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{safe}-{digest}"


def topic_token(topic: str) -> str | None:
    """`qamoe.v1.sentiment` -> `sentiment`; None for a topic outside qamoe.v1 or not a clean token."""
    prefix = SUBJECT_PREFIX + "."
    if not topic.startswith(prefix):
        return None
    short = topic[len(prefix):]
    return short if TOKEN_RE.fullmatch(short) and len(short) <= TOPIC_CHARS else None


def subject_for(topic_short: str, site: str, source: str) -> str:
    """`qamoe.v1.<topic>.<site>.<source>` from tokens already checked or sanitised."""
    return f"{SUBJECT_PREFIX}.{topic_short}.{site}.{source}"


def health_subject(site: str, bridge_id: str) -> str:
    return subject_for("health", site, bridge_id)


def msg_id(site: str, source: str, topic_short: str, seq: int, sent_mono_ns: int | None) -> str:
    """The `Nats-Msg-Id` of one message: JetStream stores a second message with the same id (within the
    stream's duplicate window) only once.

    Built from what the message itself says, so every bridge that sees it (a restarted one, a redundant pair)
    computes the same id. `seq` restarts at 0 when qamoe-live restarts, so the publisher's monotonic send stamp
    is part of it too: a restarted node's seq 0 is a new message, not a duplicate of the old seq 0."""
    stamp = "-" if sent_mono_ns is None else str(sent_mono_ns)
    return f"{site}.{source}.{topic_short}.{seq}.{stamp}"
