"""`BridgeThread`: a `Bridge` on a thread with its own asyncio loop, for programs that are not asyncio
(`qamoe-live --nats`, the tests, the benchmark).

    bridge = BridgeThread(BridgeConfig(endpoints=(ep,), nats=NatsConfig(url=...)))
    bridge.start()          # raises the bridge's typed error if NATS or the stream is not usable
    ...
    stats = bridge.stop()   # stop reading, send what is buffered (up to drain_s), close
"""

from __future__ import annotations

import asyncio
import logging
import threading

from edge.fleet.bridge import Bridge, BridgeStats
from edge.fleet.config import BridgeConfig
from edge.fleet.errors import NatsUnavailableError

log = logging.getLogger(__name__)
START_MARGIN_S = 5.0  # beyond the connect timeouts, for the stream set-up


class BridgeThread:
    def __init__(self, cfg: BridgeConfig, drain_s: float = 5.0) -> None:
        self.cfg = cfg
        self.drain_s = drain_s
        self.bridge = Bridge(cfg)
        self._opened = threading.Event()
        self._error: BaseException | None = None
        self._result: BridgeStats | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="fleet-bridge", daemon=True)

    def start(self) -> BridgeThread:
        """Start and wait until the bridge is connected and reading (or raise why it cannot be)."""
        self._thread.start()
        limit = 2 * self.cfg.nats.connect_timeout_s + 2 + START_MARGIN_S
        if not self._opened.wait(limit):
            self.stop()
            raise NatsUnavailableError(f"the bridge did not connect to {self.cfg.nats.url} within {limit:g} s")
        if self._error is not None:
            self._thread.join(2.0)
            raise self._error
        return self

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # surfaced to start() or logged: a thread must not die silently
            if not self._opened.is_set():
                self._error = exc
                self._opened.set()
            else:
                log.exception("the bridge stopped")

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        await self.bridge.open()
        self._opened.set()
        self._result = await self.bridge.run(self._stop, self.drain_s)

    def stats(self) -> BridgeStats:
        return self.bridge.stats()

    def stop(self, timeout_s: float | None = None) -> BridgeStats:
        """Stop reading, drain (up to drain_s), close; returns the final counters."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:  # the loop has just closed
                pass
        self._thread.join(timeout_s if timeout_s is not None else self.drain_s + 10.0)
        if self._thread.is_alive():
            log.error("the bridge thread did not end in time")
        return self._result or self.bridge.stats()
