"""The viewers: each WebSocket gets the page state once, then every update through its own bounded slot
(edge.web.slot), so a slow browser costs a few pending updates and a resync, never a growing queue. Runs on
the server's event loop only."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Mapping
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from edge.web.slot import LatestSlot
from edge.web.state import PageState

log = logging.getLogger(__name__)
# The kernel's send buffer per viewer. Left to autotuning it grows to megabytes for a browser that stops
# reading, a queue of its own; this bounds it (a snapshot larger than this just takes a few round trips).
SEND_BUFFER_BYTES = 128 * 1024


def dumps(message: Mapping[str, Any]) -> str:
    """Compact ASCII JSON (no NaN: the reduction never lets one through, and this refuses it if it did)."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False)


def _is_frame(item: tuple[str, str]) -> bool:
    return item[0] == "frame"


class Viewer:
    def __init__(self, backlog: int) -> None:
        self.slot: LatestSlot[tuple[str, str]] = LatestSlot(backlog)  # (kind, JSON text)
        self.wake = asyncio.Event()
        self.closed = False
        self.resyncs = 0
        self.ignored = 0  # messages the browser sent: read and thrown away (the view is read-only)


class Hub:
    """`broadcast(update)` from the stream; `serve(connection)` is the WebSocket handler."""

    def __init__(self, state: PageState, max_viewers: int, backlog: int = 16) -> None:
        self.state = state
        self.max_viewers = max_viewers
        self.backlog = backlog
        self.viewers: set[Viewer] = set()
        self.served = 0
        self.dropped_gone = 0  # drops of viewers that have left
        self.resyncs_gone = 0
        self.extra: dict[str, int] = {}  # the stream's counters, set by the server
        self._snapshot: tuple[int, str] | None = None

    @property
    def full(self) -> bool:
        return len(self.viewers) >= self.max_viewers

    def stats(self) -> dict[str, int]:
        return {
            "viewers": len(self.viewers),
            "dropped": self.dropped_gone + sum(v.slot.dropped for v in self.viewers),
            "resyncs": self.resyncs_gone + sum(v.resyncs for v in self.viewers),
            "skipped": self.state.skipped,
            "frames_refused": self.state.frames_refused,
            **self.extra,
        }

    def snapshot_text(self) -> str:
        """The whole state as one message, serialised once per state version (resyncs come in bursts)."""
        version = self.state.applied
        if self._snapshot is None or self._snapshot[0] != version:
            self._snapshot = (version, dumps({**self.state.snapshot(), "server": self.stats()}))
        return self._snapshot[1]

    def broadcast(self, update: Mapping[str, Any]) -> None:
        if update["kind"] == "health":
            update = {**update, "server": self.stats()}
        kind = update["kind"]
        item = (kind, dumps(update))
        # a newer camera frame supersedes one still waiting: a viewer that falls behind gets the newest picture
        replaces = _is_frame if kind == "frame" else None
        for viewer in self.viewers:
            viewer.slot.offer(item, replaces=replaces)
            viewer.wake.set()

    async def serve(self, connection: ServerConnection) -> None:
        sock = connection.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        viewer = Viewer(self.backlog)
        self.viewers.add(viewer)
        self.served += 1
        reader = asyncio.create_task(self._discard(connection, viewer))
        try:
            await connection.send(self.snapshot_text())
            while True:
                await viewer.wake.wait()
                viewer.wake.clear()
                if viewer.closed:
                    break
                taken = viewer.slot.take()
                if taken is None:
                    continue
                if taken.resync:
                    viewer.resyncs += 1
                    await connection.send(self.snapshot_text())
                for _, text in taken.items:
                    await connection.send(text)
        except ConnectionClosed:
            pass
        finally:
            self.viewers.discard(viewer)
            self.dropped_gone += viewer.slot.dropped
            self.resyncs_gone += viewer.resyncs
            reader.cancel()
            log.debug("viewer left: %d updates dropped, %d resyncs", viewer.slot.dropped, viewer.resyncs)

    @staticmethod
    async def _discard(connection: ServerConnection, viewer: Viewer) -> None:
        """Read what the browser sends and drop it: the page has no commands. Marks the viewer closed."""
        try:
            async for _ in connection:
                viewer.ignored += 1
        except ConnectionClosed:
            pass
        finally:
            viewer.closed = True
            viewer.wake.set()
