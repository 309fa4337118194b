"""`qamoe-tap --nats URL`: the same lines as qamoe-tap, read from the JetStream stream the bridges fill, live
(`--subject`, new messages) or from a time (`--since 15m`, `--since 2026-01-01T09:00:00Z`, `--since all`)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from edge.cli.nats_args import nats_config
from edge.errors import EXIT_OK, EXIT_USAGE, QamoeLiveError
from edge.fleet.consume import Reader, ReaderConfig, parse_since
from edge.publish.escape import terminal_safe
from edge.publish.render import render, render_json
from edge.publish.subscriber import Received

EXIT_TIMEOUT = 1


def reader_config(args: argparse.Namespace) -> ReaderConfig:
    return ReaderConfig(nats=nats_config(args, "qamoe-tap"), subject=args.subject, stream=args.stream,
                        since=parse_since(args.since), durable=args.durable)


async def tap(cfg: ReaderConfig, *, as_json: bool, count: int | None, timeout_s: float | None) -> int:
    reader = await Reader.open(cfg)
    try:
        seen = 0
        while count is None or seen < count:
            started = time.monotonic()
            got = await reader.next(timeout_s)
            if got is None:
                print(f"qamoe-tap: nothing on {cfg.subject} for {time.monotonic() - started:.1f} s: are the "
                      "bridges running? (check --nats, --subject and --stream)", file=sys.stderr)
                return EXIT_TIMEOUT
            where = got.subject.split(".", 3)[3] if got.subject.count(".") >= 3 else got.subject
            line = render_json(got.payload) if as_json else f"{where} {render_line(got.topic, got.payload)}"
            print(line, flush=True)
            seen += 1
        return EXIT_OK
    finally:
        await reader.close()


def render_line(topic: str, payload: dict[str, Any]) -> str:
    """qamoe-tap's line; a bridge's own health (`"kind": "bridge"`) gets a line of its counters."""
    b = payload.get("bridge")
    if payload.get("kind") != "bridge" or not isinstance(b, dict):
        return render(Received(topic, payload))
    # the head of a line (time, "bridge", #seq) as render() makes it for a topic it has no format for
    head = render(Received("qamoe.v1.bridge", {k: payload.get(k) for k in ("sent", "seq")})).split(" {", 1)[0]
    fields = ("connected", "buffered", "published", "dropped", "lost_upstream", "lag_ms_max")
    return f"{head} " + " ".join(f"{k} {terminal_safe(str(b.get(k)), 16)}" for k in fields)


def run_nats(args: argparse.Namespace) -> int:
    """The exit code: 0 done, 1 nothing within --timeout, 2 bad arguments or credentials, 5 no NATS server
    or no such stream."""
    try:
        cfg = reader_config(args)
        return asyncio.run(tap(cfg, as_json=args.json, count=args.count, timeout_s=args.timeout))
    except QamoeLiveError as exc:
        print(f"qamoe-tap: {exc}", file=sys.stderr)
        return exc.exit_code if exc.exit_code is not None else EXIT_USAGE
