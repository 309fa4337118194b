"""`qamoe-record DIR --nats URL`: the same recording, read from the JetStream stream the bridges fill instead of
one node's ZeroMQ socket (every node on `--subject`, live or from `--since`, or a `--durable` consumer that a
later run resumes). Each message is written as qamoe-record writes a ZeroMQ one: the node's payload as it was
published, stamped with this process's clocks when it is taken off the consumer. The gap index counts `seq`
per (source, topic) as for one node, so a gap is what the stream no longer holds or never got."""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time

from edge.errors import EXIT_OK
from edge.record import RecordConfig
from edge.record.writer import GAPS_FILE, JsonlRecordWriter

POLL_S = 0.1  # how often the loop looks at its stop flag and deadline


async def _record(args: argparse.Namespace, config: RecordConfig, stop: threading.Event) -> tuple[int, int]:
    from edge.cli.tap_nats import reader_config
    from edge.fleet.consume import Reader

    reader = await Reader.open(reader_config(args))
    received = 0
    deadline = None if args.duration is None else time.monotonic() + args.duration
    try:
        with JsonlRecordWriter(config) as writer:
            print(f"qamoe-record: recording {args.subject} from {args.nats} into {args.dir} (run {writer.run_id})",
                  file=sys.stderr, flush=True)
            while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                got = await reader.next(POLL_S)
                if got is None:
                    continue
                writer.write(got.topic, got.payload, received_wall_ns=time.time_ns(),
                             received_mono_ns=time.monotonic_ns())
                received += 1
            missing = writer.gaps.missing
    finally:
        await reader.close()
    return received, missing


def record_nats(args: argparse.Namespace, config: RecordConfig, stop: threading.Event) -> int:
    received, missing = asyncio.run(_record(args, config, stop))
    print(f"qamoe-record: {received} messages from NATS, {missing} missing by seq ({args.dir / GAPS_FILE})",
          file=sys.stderr)
    return EXIT_OK
