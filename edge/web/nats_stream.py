"""One node's stream read from NATS JetStream (`qamoe-web --nats URL --subject ...`), for a node behind a
qamoe-bridge: the same hand-off as `edge.web.stream.StreamReader` (a bounded drop-oldest inbox drained by the
server's `_pump`), but read by a task on the server's own event loop (nats-py is asyncio).

The page shows one node: the first `source_id` that arrives is the one shown, and messages of other sources on
the same subject filter are counted (`other_sources`) and left out; narrow the filter to one node
(`qamoe.v1.*.SITE.SOURCE`) to choose it. The bridges' own health (`"kind": "bridge"`) is not a node's and is
left out too."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edge.web.stream import Inbox

if TYPE_CHECKING:
    from edge.fleet.consume import Reader, ReaderConfig

log = logging.getLogger(__name__)
POLL_S = 0.25  # how often the reading task looks at its stop flag


class NatsStreamReader:
    """`await open()` (connects: a bad URL or stream fails before anything is served), `start()`, `drain()`
    from the loop, `await aclose()`."""

    def __init__(self, config: ReaderConfig, on_ready: Callable[[], None], capacity: int = 256) -> None:
        self._config = config
        self._inbox = Inbox(capacity, on_ready)
        self._reader: Reader | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self.source: str | None = None
        self.undecodable = 0
        self.other_sources = 0

    @property
    def received(self) -> int:
        return self._inbox.received

    @property
    def dropped(self) -> int:
        return self._inbox.dropped

    @property
    def endpoint(self) -> str:
        return f"{self._config.subject} on {self._config.nats.url.split('@')[-1]}"

    async def open(self) -> None:
        from edge.fleet.consume import Reader

        self._reader = await Reader.open(self._config)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="qamoe-web-nats")

    async def _run(self) -> None:
        assert self._reader is not None
        try:
            while not self._stop.is_set():
                got = await self._reader.next(POLL_S)
                if got is not None:
                    self._offer(got.topic, got.payload)
        except Exception as exc:  # noqa: BLE001 - logged: the page stops updating, the server stays up
            log.error("reading %s failed (%s); the page stops updating", self.endpoint, exc)

    def _offer(self, topic: str, payload: dict[str, Any]) -> None:
        if "raw" in payload and len(payload) == 1:  # not a JSON object (edge.fleet.consume.Delivered)
            self.undecodable += 1
            return
        if payload.get("kind") == "bridge":
            return
        source = payload.get("source_id")
        if self.source is None and isinstance(source, str):
            self.source = source
            log.info("showing source %r", source)
        if source != self.source:
            self.other_sources += 1
            return
        self._inbox.put(topic, payload)

    def drain(self) -> list[tuple[str, dict[str, Any]]]:
        return self._inbox.drain()

    async def aclose(self) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, POLL_S + 2.0)
        if self._reader is not None:
            await self._reader.close()
