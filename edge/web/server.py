"""`WebServer`: the node's stream in, the page and its WebSocket out, on one asyncio loop.

    server = WebServer(WebConfig(token=t), SubscriberConfig(endpoint="tcp://127.0.0.1:5556"))
    asyncio.run(server.run(stop_event, on_listening=print))

The websockets library does the HTTP and WebSocket protocol (its `process_request` hook serves the page);
this module wires the pieces: `StreamReader` (ZeroMQ thread) -> `PageState` (reduction) -> `Hub` (viewers).
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from edge.publish.subscriber import SubscriberConfig
from edge.web.config import WebConfig
from edge.web.errors import WebBindError
from edge.web.hub import Hub
from edge.web.nats_stream import NatsStreamReader
from edge.web.pages import Pages
from edge.web.state import PageState
from edge.web.stream import StreamReader

if TYPE_CHECKING:
    from edge.fleet.consume import ReaderConfig

log = logging.getLogger(__name__)
CLOSE_WAIT_S = 2.0  # how long stopping waits for connections to close
MAX_INCOMING_BYTES = 1024  # a browser has nothing to say to a read-only view; more closes the connection


def page_url(host: str, port: int, token: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/?token={token}"


def bind_error(exc: OSError, host: str, port: int) -> WebBindError:
    """A one-line, actionable error for a failed bind."""
    if exc.errno == errno.EADDRINUSE:
        why = (
            f"port {port} is already in use on {host}: stop the process holding it "
            f"(`ss -ltnp | grep :{port}`) or choose another, e.g. --port {port + 1 if 0 < port < 65535 else 8766} "
            "(--port 0: any free one)"
        )
    elif exc.errno == errno.EADDRNOTAVAIL:
        why = (
            f"address {host} is not on this machine: give one of its addresses (`ip -brief addr`), or 0.0.0.0"
        )
    elif exc.errno == errno.EACCES:
        why = f"port {port} needs privileges: choose one above 1023"
    else:
        why = f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return WebBindError(why)


class WebServer:
    """One page server over one node's stream. `run` serves until `stop` is set."""

    def __init__(self, config: WebConfig, subscriber: SubscriberConfig | ReaderConfig) -> None:
        self.config = config
        self.subscriber = subscriber
        self.state = PageState(config.trace_points, config.transcript_lines, frames=config.frames)
        self.hub = Hub(self.state, config.max_viewers, config.viewer_backlog)
        self.pages = Pages.load(config.token)
        self.url: str | None = None
        self._reader: StreamReader | NatsStreamReader | None = None

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        return self.pages.route(request, self.hub.full)

    def _pump(self) -> None:
        """Move what the stream thread received into the page state and out to the viewers."""
        reader = self._reader
        if reader is None:
            return
        for topic, payload in reader.drain():
            update = self.state.apply(topic, payload)
            if update is not None:
                self.hub.broadcast(update)
        self.hub.extra = {"stream_dropped": reader.dropped, "undecodable": reader.undecodable}

    async def _listen(self) -> Server:
        cfg = self.config
        try:
            return await serve(
                self.hub.serve, cfg.host, cfg.port,
                process_request=self._process_request,
                compression=None,  # per-viewer deflate would cost CPU per viewer for small messages
                max_size=MAX_INCOMING_BYTES, max_queue=4, server_header=None, close_timeout=CLOSE_WAIT_S,
            )  # fmt: skip
        except OSError as exc:
            raise bind_error(exc, cfg.host, cfg.port) from exc

    @staticmethod
    async def _closed(server: Server) -> None:
        """Wait for the connections to close, but not for a client that holds one open after its response."""
        try:
            await asyncio.wait_for(server.wait_closed(), CLOSE_WAIT_S)
        except TimeoutError:
            log.info("a connection was still open %g s after closing; not waiting for it", CLOSE_WAIT_S)

    async def run(self, stop: asyncio.Event, on_listening: Callable[[str], None] | None = None) -> None:
        loop = asyncio.get_running_loop()

        def ready() -> None:
            if not loop.is_closed():
                loop.call_soon_threadsafe(self._pump)

        self._reader = await self._open_reader(ready)
        try:
            server = await self._listen()
            port = server.sockets[0].getsockname()[1] if server.sockets else self.config.port
            self.url = page_url(self.config.host, port, self.config.token)
            self._reader.start()
            log.info("serving %s from %s", self.url.split("?")[0], self._reader.endpoint)
            if on_listening is not None:
                on_listening(self.url)
            try:
                await stop.wait()
            finally:
                server.close()
                await self._closed(server)
        finally:
            await self._close_reader()
            log.info("served %d viewers; %s", self.hub.served, self.hub.stats())

    async def _open_reader(self, ready: Callable[[], None]) -> StreamReader | NatsStreamReader:
        """The node's stream: its ZeroMQ socket (a thread), or, behind a bridge, JetStream (a task here)."""
        if isinstance(self.subscriber, SubscriberConfig):
            return StreamReader(self.subscriber, ready, self.config.inbox_capacity)
        loop = asyncio.get_running_loop()

        def soon() -> None:  # the reading task runs on this loop: pump once it yields
            loop.call_soon(self._pump)

        reader = NatsStreamReader(self.subscriber, soon, self.config.inbox_capacity)
        await reader.open()
        return reader

    async def _close_reader(self) -> None:
        reader = self._reader
        if isinstance(reader, NatsStreamReader):
            await reader.aclose()
        elif reader is not None:
            reader.stop()
            reader.join()
