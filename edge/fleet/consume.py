"""Reading the bridged stream back from JetStream: what `qamoe-tap --nats` and the examples do.

`open_reader` makes an ordered, ephemeral consumer (no acks, nothing left behind on the server once it is
gone) on a subject filter, starting with new messages or at a time (`since`), or binds a durable consumer by
name (whose position the server keeps between runs)."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext

from edge.fleet.config import NatsConfig
from edge.fleet.errors import FleetConfigError, NatsUnavailableError
from edge.fleet.natsconn import connect, jetstream
from edge.fleet.subjects import TOKEN_RE

log = logging.getLogger(__name__)
_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def check_subject_filter(subject: str) -> str:
    """A subject filter such as `qamoe.v1.sentiment.>` or `qamoe.v1.*.clinic-a.*`: tokens, `*`, a final `>`."""
    tokens = subject.split(".")
    ok = all(t == "*" or (t == ">" and i == len(tokens) - 1) or TOKEN_RE.fullmatch(t)
             for i, t in enumerate(tokens))
    if not ok:
        raise FleetConfigError(
            f"--subject {subject!r} is not a NATS subject filter: dot-separated tokens of A-Z a-z 0-9 _ -, "
            "'*' for one token, '>' at the end for the rest (e.g. 'qamoe.v1.sentiment.>')"
        )
    return subject


def parse_since(text: str | None, now: datetime | None = None) -> datetime | None:
    """`--since`: None (new messages only), `all`, a relative age (`90s`, `15m`, `2h`, `1d`) or an ISO 8601
    time (`2026-01-01T09:00:00Z`; without a zone: UTC). `all` -> datetime.min as a marker."""
    if text is None:
        return None
    if text == "all":
        return datetime.min.replace(tzinfo=UTC)
    m = _RELATIVE.fullmatch(text.strip())
    if m:
        return (now or datetime.now(UTC)) - timedelta(seconds=float(m[1]) * _UNIT_S[m[2]])
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise FleetConfigError(
            f"--since {text!r}: give all, an age (90s, 15m, 2h, 1d) or a time (2026-01-01T09:00:00Z)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass(frozen=True)
class ReaderConfig:
    nats: NatsConfig
    subject: str = "qamoe.v1.>"
    stream: str = "QAMOE"
    since: datetime | None = None
    durable: str | None = None

    def __post_init__(self) -> None:
        check_subject_filter(self.subject)
        if self.durable is not None and not TOKEN_RE.fullmatch(self.durable):
            raise FleetConfigError(f"--durable {self.durable!r}: use 1-64 of A-Z a-z 0-9 _ -")


@dataclass(frozen=True)
class Delivered:
    subject: str
    topic: str
    payload: dict[str, Any]
    stream_seq: int | None


class Reader:
    """`await Reader.open(cfg)`, then `await reader.next(timeout_s)` -> Delivered or None; `await close()`."""

    def __init__(self, nc: Client, sub: Any, durable: bool) -> None:
        self._nc, self._sub, self._durable = nc, sub, durable
        self.undecodable = 0

    @classmethod
    async def open(cls, cfg: ReaderConfig) -> Reader:
        nc = await connect(cfg.nats)
        try:
            js = await jetstream(nc, cfg.nats.js_domain)
            sub = await _subscribe(js, cfg)
        except BaseException:
            await nc.close()
            raise
        return cls(nc, sub, cfg.durable is not None)

    async def next(self, timeout_s: float | None) -> Delivered | None:
        try:
            msg = await self._sub.next_msg(timeout=timeout_s if timeout_s is not None else 3600.0)
        except nats.errors.TimeoutError:
            return None
        if self._durable:
            await msg.ack()
        try:
            payload = json.loads(msg.data)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            self.undecodable += 1
            return Delivered(msg.subject, msg.subject, {"raw": msg.data[:200].decode("utf-8", "replace")}, None)
        topic = payload.get("topic")
        topic = topic if isinstance(topic, str) else msg.subject
        seq = msg.metadata.sequence.stream if msg.reply else None
        return Delivered(msg.subject, topic, payload, seq)

    async def close(self) -> None:
        try:
            await self._sub.unsubscribe()
        except (nats.errors.Error, OSError):
            pass
        await self._nc.close()


async def _subscribe(js: JetStreamContext, cfg: ReaderConfig) -> Any:
    policy, start = DeliverPolicy.NEW, None
    if cfg.since is not None:
        all_of_it = cfg.since.year == 1
        policy, start = (DeliverPolicy.ALL, None) if all_of_it else (DeliverPolicy.BY_START_TIME, cfg.since)
    try:
        if cfg.durable is not None:
            config = ConsumerConfig(durable_name=cfg.durable, deliver_policy=policy, opt_start_time=start,
                                    ack_policy=AckPolicy.EXPLICIT, filter_subject=cfg.subject)
            return await js.subscribe(cfg.subject, durable=cfg.durable, stream=cfg.stream, config=config,
                                      manual_ack=True)
        config = ConsumerConfig(deliver_policy=policy, opt_start_time=start)
        return await js.subscribe(cfg.subject, stream=cfg.stream, ordered_consumer=True, config=config)
    except nats.js.errors.NotFoundError:
        raise NatsUnavailableError(
            f"no stream {cfg.stream} on this server: start a qamoe-bridge first, or pass --stream NAME"
        ) from None
    except nats.js.errors.BadRequestError as exc:
        raise FleetConfigError(f"JetStream refused the consumer: {exc.description}") from None
