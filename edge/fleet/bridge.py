"""`Bridge`: node ZeroMQ streams -> one JetStream stream, with de-duplication ids, a bounded buffer while NATS
is away, reconnection with capped backoff and its own health. An asyncio object: `open()` (fails fast with a
typed error), `run(stop)`, then it drains and closes. `edge.fleet.runner.BridgeThread` runs one on a thread.

Delivery: every message is published with a `Nats-Msg-Id` (edge.fleet.subjects.msg_id) and kept in the buffer
until JetStream acknowledges it; a batch whose acks do not all come back within `ack_timeout_s` is sent again,
and JetStream stores a repeated id once within the stream's duplicate window. So within the buffer bound and
the duplicate window nothing is lost or doubled; beyond the bound the oldest messages are dropped and counted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from dataclasses import asdict, dataclass
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

from edge.fleet.config import BridgeConfig
from edge.fleet.errors import NatsAuthError, NatsUnavailableError, StreamConflictError
from edge.fleet.ingest import Ingest, Outgoing, ZmqReader
from edge.fleet.natsconn import connect, ensure_stream, jetstream, last_stored
from edge.fleet.subjects import health_subject
from edge.fleet.tracking import BoundedBuffer
from edge.publish.wire import SCHEMA_VERSION, TOPIC_HEALTH, WallClock
from edge.vocab import NS

log = logging.getLogger(__name__)
IDLE_WAIT_S = 0.1
MSG_ID = "Nats-Msg-Id"
SETUP_ERRORS = (NatsUnavailableError, NatsAuthError, StreamConflictError)


@dataclass(frozen=True)
class BridgeStats:
    """What the bridge has done since it started (also its health message's `bridge` object)."""

    connected: bool
    buffered: int
    capacity: int
    policy: str
    received: int
    published: int
    duplicates: int
    dropped: int
    lost_upstream: int
    restarts_upstream: int
    rejected: int
    undecodable: int
    reconnects: int
    lag_ms_max: float | None
    oldest_buffered_s: float | None


class Bridge:
    def __init__(self, cfg: BridgeConfig) -> None:
        self.cfg = cfg
        self.buffer: BoundedBuffer[Outgoing] = BoundedBuffer(cfg.buffer_capacity)
        self.ingest = Ingest(cfg, self.buffer, self._wake_from_thread)
        self._readers: list[ZmqReader] = []
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._connected = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._idle = False
        self._published = self._duplicates = self._reconnects = self._health_seq = 0
        self._lag_max_ns: int | None = None
        self._started = time.monotonic()

    # ----------------------------------------------------------------------------------------------- set up
    async def open(self) -> None:
        """Connect to NATS, create or check the stream, then start reading the nodes. Typed errors
        (NatsUnavailableError, NatsAuthError, StreamConflictError, FleetConfigError) leave nothing running."""
        self._loop = asyncio.get_running_loop()
        await self._connect()
        try:
            reader = ZmqReader(self.cfg.endpoints, self.cfg, self.ingest)
            self._readers.append(reader)
            reader.start()
        except BaseException:
            await self._stop_readers()
            await self._close_nats()
            raise
        log.info("bridging %s -> %s (stream %s)", ", ".join(self.cfg.endpoints), self.cfg.nats.url,
                 self.cfg.stream.name)

    async def _connect(self) -> None:
        nc = await connect(self.cfg.nats, callbacks={
            "disconnected_cb": self._on_disconnect, "closed_cb": self._on_disconnect})
        try:
            js = await jetstream(nc, self.cfg.nats.js_domain)
            await ensure_stream(js, self.cfg.stream)
        except BaseException:
            await _close_quietly(nc)
            raise
        self._nc, self._js, self._connected = nc, js, True

    async def _on_disconnect(self) -> None:
        if self._connected:
            log.warning("lost NATS; buffering up to %d messages (%s)", self.cfg.buffer_capacity,
                        self.buffer.policy)
        self._connected = False

    def _wake_from_thread(self) -> None:
        if self._idle and self._loop is not None:
            self._idle = False
            self._loop.call_soon_threadsafe(self._wake.set)

    # -------------------------------------------------------------------------------------------------- run
    async def run(self, stop: asyncio.Event, drain_s: float = 5.0) -> BridgeStats:
        """Bridge until `stop` is set; then stop reading, send what is buffered (up to `drain_s`), close."""
        health = asyncio.create_task(self._health_loop(stop))
        try:
            await self._send_loop(stop, None)
            await self._stop_readers()
            await self._send_loop(stop, time.monotonic() + drain_s)
        finally:
            health.cancel()
            await asyncio.gather(health, return_exceptions=True)
            await self._stop_readers()
            if self._connected:
                await self._publish_health()
            await self._close_nats()
        stats = self.stats()
        if stats.buffered:
            log.warning("%d buffered message(s) not sent before the end", stats.buffered)
        return stats

    async def _send_loop(self, stop: asyncio.Event, deadline: float | None) -> None:
        """Until `stop` (deadline None), or until the buffer is empty or the deadline passes (draining)."""
        backoff = self.cfg.backoff_initial_s
        while not (stop.is_set() if deadline is None else (not self.buffer or time.monotonic() > deadline)):
            if not self._connected:
                if await self._reconnect():
                    backoff = self.cfg.backoff_initial_s
                    continue
                wait = backoff * random.uniform(0.8, 1.2)
                if deadline is not None:
                    wait = min(wait, max(0.0, deadline - time.monotonic()))
                await _wait(stop if deadline is None else None, wait)
                backoff = min(self.cfg.backoff_max_s, backoff * 2)
                continue
            batch = self.buffer.take(self.cfg.batch)
            if batch:
                await self._send(batch)
            else:
                await self._wait_for_work(stop)

    async def _wait_for_work(self, stop: asyncio.Event) -> None:
        self._wake.clear()
        self._idle = True
        if not self.buffer and not stop.is_set():
            try:
                await asyncio.wait_for(self._wake.wait(), IDLE_WAIT_S)
            except TimeoutError:
                pass
        self._idle = False

    async def _reconnect(self) -> bool:
        await self._close_nats()
        try:
            await self._connect()
        except SETUP_ERRORS as exc:
            log.debug("reconnecting to NATS: %s", exc)
            return False
        self._reconnects += 1
        log.warning("NATS is back (reconnect %d); %d message(s) buffered", self._reconnects, len(self.buffer))
        return True

    # ------------------------------------------------------------------------------------------------ send
    async def _send(self, batch: list[Outgoing]) -> None:
        js = self._js
        assert js is not None
        await self._resume_keys(js, batch)
        futures: list[asyncio.Future[Any]] = []
        try:
            for m in batch:
                futures.append(await js.publish_async(m.subject, m.data, headers={MSG_ID: m.msg_id}))
        except (nats.errors.Error, OSError) as exc:
            log.debug("publish stopped after %d of %d: %r", len(futures), len(batch), exc)
            self._connected = False
        if futures:
            await asyncio.wait(futures, timeout=self.cfg.ack_timeout_s)
        retry = batch[len(futures):]
        now = time.monotonic_ns()
        for m, fut in zip(batch, futures, strict=False):
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                self._published += 1
                self._duplicates += bool(getattr(fut.result(), "duplicate", False))
                lag = now - m.received_ns
                self._lag_max_ns = lag if self._lag_max_ns is None else max(self._lag_max_ns, lag)
            else:
                if not fut.done():
                    fut.cancel()
                retry.append(m)
        if retry:
            self.buffer.push_front(retry)
            log.debug("%d message(s) not acknowledged: sending them again after reconnecting", len(retry))
            self._connected = False  # reconnect (and re-check the stream) before trying again

    async def _resume_keys(self, js: JetStreamContext, batch: list[Outgoing]) -> None:
        if not self.cfg.resume:
            return
        for m in batch:
            if not m.first:
                continue
            try:
                stored = await last_stored(js, self.cfg.stream.name, m.subject)
            except (nats.errors.Error, OSError) as exc:
                log.debug("last stored message of %s: %r", m.subject, exc)
                continue
            if stored is None or not isinstance(stored.get("seq"), int):
                continue
            sent = stored.get("sent")
            mono = sent.get("mono_ns") if isinstance(sent, dict) else None
            same_run = isinstance(mono, int) and m.sent_mono_ns is not None and mono < m.sent_mono_ns
            if same_run and stored["seq"] < m.seq:
                self.ingest.resume(m.key, stored["seq"], m.seq)

    # ---------------------------------------------------------------------------------------------- health
    async def _health_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await _wait(stop, self.cfg.health_interval_s)
            if self._connected and not stop.is_set():  # (run() sends a last one at the end)
                await self._publish_health()

    async def _publish_health(self) -> None:
        nc = self._nc
        if nc is None:
            return
        body = self.health_payload()
        subject = health_subject(self.cfg.site, self.cfg.bridge_id)
        mid = f"{self.cfg.site}.{self.cfg.bridge_id}.health.{body['seq']}.{body['sent']['mono_ns']}"
        try:
            await nc.publish(subject, json.dumps(body, separators=(",", ":")).encode(), headers={MSG_ID: mid})
        except (nats.errors.Error, OSError) as exc:
            log.debug("bridge health not published: %r", exc)
        self._lag_max_ns = None

    def health_payload(self) -> dict[str, Any]:
        seq, self._health_seq = self._health_seq, self._health_seq + 1
        return {
            "schema_version": SCHEMA_VERSION, "topic": TOPIC_HEALTH, "kind": "bridge", "seq": seq,
            "sent": WallClock.now().timepoint(time.monotonic_ns()), "valid": True, "invalid_reason": None,
            "source_id": self.cfg.bridge_id, "site": self.cfg.site,
            "uptime_s": round(time.monotonic() - self._started, 3), "endpoints": list(self.cfg.endpoints),
            "stream": self.cfg.stream.name, "bridge": asdict(self.stats()),
        }

    def stats(self) -> BridgeStats:
        head = self.buffer.peek()
        ing = self.ingest
        return BridgeStats(
            connected=self._connected, buffered=len(self.buffer), capacity=self.buffer.capacity,
            policy=self.buffer.policy, received=ing.received, published=self._published,
            duplicates=self._duplicates, dropped=self.buffer.dropped, lost_upstream=ing.tracker.lost,
            restarts_upstream=ing.tracker.restarts, rejected=ing.rejected, undecodable=ing.undecodable,
            reconnects=self._reconnects,
            lag_ms_max=None if self._lag_max_ns is None else round(self._lag_max_ns / 1e6, 3),
            oldest_buffered_s=None if head is None else round((time.monotonic_ns() - head.received_ns) / NS, 3),
        )

    # ----------------------------------------------------------------------------------------------- close
    async def _stop_readers(self) -> None:
        for reader in self._readers:
            reader.stop()
        for reader in self._readers:
            await asyncio.to_thread(reader.join)

    async def _close_nats(self) -> None:
        nc, self._nc, self._js, self._connected = self._nc, None, None, False
        if nc is not None:
            await _close_quietly(nc)


async def _close_quietly(nc: Client) -> None:
    try:
        await asyncio.wait_for(nc.close(), 2.0)
    except (nats.errors.Error, OSError, TimeoutError) as exc:
        log.debug("closing the NATS connection: %r", exc)


async def _wait(stop: asyncio.Event | None, seconds: float) -> None:
    """Sleep `seconds`, or less if `stop` is set meanwhile."""
    if stop is None:
        await asyncio.sleep(seconds)
        return
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass
