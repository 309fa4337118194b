"""`qamoe-record`: record every message a qamoe-live publisher sends, as JSON Lines; `qamoe-record export`: its
sentiment windows as a table.

    qamoe-record DIR [--endpoint E] [--rotate-mb N] [--rotate-s S] [--duration S] [CURVE keys as qamoe-tap]
    qamoe-record DIR --nats URL [--subject 'qamoe.v1.>'] [--since 15m] [--durable NAME]   (from JetStream)
    qamoe-record export DIR OUT.parquet [--csv]

Exit codes: 0 done (--duration reached, export written), 2 bad arguments or keys (or NATS credentials), 3 the
recording cannot be read (export), 5 (with --nats) no NATS server answered or it has no such stream, 6 the
recording or the table cannot be written (or pyarrow is missing), 129/130/143 stopped by SIGHUP/SIGINT/SIGTERM
(the files are closed and complete either way)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from edge.cli.nats_args import add_nats_arguments
from edge.errors import EXIT_OK, EXIT_UNEXPECTED, EXIT_USAGE, QamoeLiveError
from edge.publish import DEFAULT_ENDPOINT, Subscriber, SubscriberConfig
from edge.publish.curve import find_secret_file
from edge.record import RecordConfig, RecordConfigError, export, record_stream
from edge.record.config import DEFAULT_ROTATE_BYTES, DEFAULT_ROTATE_S
from edge.record.writer import GAPS_FILE, JsonlRecordWriter

log = logging.getLogger("qamoe-record")
EXIT_SIGNAL: dict[int, int] = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}
DEFAULT_RECONNECT_MS = 10  # a --fast replay can publish everything within ~100 ms of binding


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qamoe-record",
        description=__doc__.split("\n")[0],
        epilog="Export: qamoe-record export DIR OUT.parquet [--csv] (see `qamoe-record export -h`).",
    )
    p.add_argument("dir", type=Path, metavar="DIR", help="the recording directory (created if missing)")
    p.add_argument("--endpoint", default=DEFAULT_ENDPOINT, help=f"publisher endpoint (default {DEFAULT_ENDPOINT})")
    p.add_argument("--rotate-mb", type=float, default=DEFAULT_ROTATE_BYTES / 2**20, metavar="MB",
                   help="start a new file before one grows past this many MiB (default 64; 0: never)")
    p.add_argument("--rotate-s", type=float, default=DEFAULT_ROTATE_S, metavar="S",
                   help="start a new file after this many seconds (default 3600; 0: never)")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds (exit 0)")
    p.add_argument("--reconnect-ms", type=int, default=DEFAULT_RECONNECT_MS, metavar="MS",
                   help=f"retry interval while the publisher is not there (default {DEFAULT_RECONNECT_MS})")
    p.add_argument("--curve-server-key", type=Path, metavar="FILE", help="the publisher's public key (NAME.key)")
    p.add_argument("--curve-client-keys", type=Path, metavar="PATH",
                   help="this client's key pair: a NAME.key_secret file or a directory holding one")
    add_nats_arguments(p, url_default=None)  # --nats URL: record from JetStream instead (edge.cli.record_nats)
    p.add_argument("--subject", default="qamoe.v1.>", help="with --nats: subject filter (default qamoe.v1.>)")
    p.add_argument("--since", default=None, metavar="WHEN",
                   help="with --nats: from a time (2026-01-01T09:00:00Z), an age (15m) or all")
    p.add_argument("--durable", default=None, metavar="NAME",
                   help="with --nats: a durable consumer, so a later run resumes where this one stopped")
    p.add_argument("-v", "--verbose", action="store_true", help="log each new file and details to stderr")
    return p


def build_export_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="qamoe-record export",
                                description="One row per sentiment window of a recording, as Parquet or CSV.")
    p.add_argument("recording", type=Path, metavar="DIR", help="a qamoe-record directory (or one .jsonl file)")
    p.add_argument("out", type=Path, metavar="OUT", help="the table to write (.parquet; .csv with --csv)")
    p.add_argument("--csv", action="store_true", help="write CSV (no pyarrow needed; also when OUT ends in .csv)")
    p.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    return p


def record_config(args: argparse.Namespace) -> RecordConfig:
    if args.rotate_mb < 0 or args.rotate_s < 0:
        raise RecordConfigError("--rotate-mb and --rotate-s take 0 (never) or a positive number")
    return RecordConfig(
        directory=args.dir,
        rotate_bytes=int(args.rotate_mb * 2**20) if args.rotate_mb else None,
        rotate_s=args.rotate_s or None,
    )


def subscriber_config(args: argparse.Namespace) -> SubscriberConfig:
    client = find_secret_file(args.curve_client_keys) if args.curve_client_keys else None
    return SubscriberConfig(
        endpoint=args.endpoint,
        reconnect_ivl_ms=args.reconnect_ms,
        curve_server_public_key_file=args.curve_server_key,
        curve_client_secret_key_file=client,
    )


def record(args: argparse.Namespace, stop: threading.Event) -> int:
    if args.duration is not None and not args.duration > 0:
        raise RecordConfigError(f"--duration {args.duration}: choose a positive number of seconds")
    if args.nats:
        from edge.cli.record_nats import record_nats

        return record_nats(args, record_config(args), stop)
    if args.since or args.durable or args.subject != "qamoe.v1.>":
        raise RecordConfigError("--subject, --since and --durable read from NATS: add --nats URL")
    config, sub_config = record_config(args), subscriber_config(args)
    with JsonlRecordWriter(config) as writer, Subscriber(sub_config) as sub:
        print(f"qamoe-record: recording {args.endpoint} into {args.dir} (run {writer.run_id})",
              file=sys.stderr, flush=True)
        stats = record_stream(sub, writer, stop, duration_s=args.duration)
    print(f"qamoe-record: {stats.received} messages in {len(writer.files)} file(s), "
          f"{writer.gaps.missing} missing by seq ({args.dir / GAPS_FILE})", file=sys.stderr)
    return EXIT_OK


def run_export(argv: Sequence[str]) -> int:
    args = build_export_parser().parse_args(argv)
    _logging(args.verbose)
    result = export(args.recording, args.out, as_csv=args.csv or args.out.suffix.lower() == ".csv")
    torn = f", {result.torn} torn last line(s) skipped" if result.torn else ""
    print(f"qamoe-record: {result.rows} windows from {result.files} file(s) -> {result.out}{torn}",
          file=sys.stderr)
    return EXIT_OK


def _logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    stop, caught = threading.Event(), list[int]()
    try:
        if argv[:1] == ["export"]:
            return run_export(argv[1:])
        args = build_parser().parse_args(argv)
        _logging(args.verbose)

        def on_signal(signum: int, _frame: object) -> None:
            caught.append(signum)
            stop.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in EXIT_SIGNAL}
        try:
            code = record(args, stop)
        finally:  # main() may run inside another program (the tests): give its handlers back
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    except QamoeLiveError as exc:
        print(f"qamoe-record: {exc}", file=sys.stderr)
        return exc.exit_code if exc.exit_code is not None else EXIT_UNEXPECTED
    except ValueError as exc:  # a library refusing a value it was handed (pyzmq, argparse types)
        print(f"qamoe-record: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_SIGNAL.get(caught[0], code) if caught else code


if __name__ == "__main__":
    sys.exit(main())
