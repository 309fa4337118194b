"""`qamoe-tap`: subscribe to a qamoe-live publisher and print the stream, one readable line per message.

Exit codes: 0 done (--count reached, or Ctrl-C), 1 nothing arrived within --timeout, 2 bad arguments or keys
(or NATS credentials), 5 (with --nats) no NATS server answered, or it has no such stream."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from edge.cli.nats_args import add_nats_arguments
from edge.errors import EXIT_OK, EXIT_USAGE
from edge.publish import (
    DEFAULT_ENDPOINT,
    TOPIC_PREFIX,
    TOPICS,
    CurveKeyError,
    MessageError,
    PublishError,
    Subscriber,
    SubscriberConfig,
    terminal_safe,
)
from edge.publish.curve import find_secret_file
from edge.publish.render import render, render_json

EXIT_TIMEOUT = 1  # qamoe-tap's own: nothing arrived in time
SHORT_TOPICS = {t.rsplit(".", 1)[1]: t for t in TOPICS}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="qamoe-tap", description=__doc__.split("\n")[0])
    p.add_argument(
        "--endpoint", default=DEFAULT_ENDPOINT, help=f"publisher endpoint (default {DEFAULT_ENDPOINT})"
    )
    p.add_argument(
        "--topics",
        nargs="+",
        metavar="TOPIC",
        default=None,
        help=f"topics to show: {', '.join(SHORT_TOPICS)} or full names (default: all)",
    )
    p.add_argument("--json", action="store_true", help="print each payload as one line of raw JSON")
    p.add_argument("--count", type=int, default=None, metavar="N", help="exit 0 after N messages")
    p.add_argument(
        "--timeout", type=float, default=None, metavar="S", help="exit 1 if no message arrives for S seconds"
    )
    p.add_argument(
        "--curve-server-key", type=Path, metavar="FILE", help="the publisher's public key (NAME.key)"
    )
    p.add_argument(
        "--curve-client-keys",
        type=Path,
        metavar="PATH",
        help="this client's key pair: a NAME.key_secret file or a directory holding one",
    )
    add_nats_arguments(p, url_default=None)  # --nats URL: read the JetStream stream instead (edge.cli.tap_nats)
    p.add_argument("--subject", default="qamoe.v1.>", help="with --nats: subject filter (default qamoe.v1.>)")
    p.add_argument("--since", default=None, metavar="WHEN",
                   help="with --nats: replay from a time (2026-01-01T09:00:00Z), an age (15m) or all")
    p.add_argument("--durable", default=None, metavar="NAME",
                   help="with --nats: a durable consumer, so a later run resumes where this one stopped")
    p.add_argument("-v", "--verbose", action="store_true", help="log connection details to stderr")
    return p


def topic_filters(names: Sequence[str] | None) -> tuple[str, ...]:
    if not names:
        return (TOPIC_PREFIX,)
    out = []
    for name in names:
        topic = SHORT_TOPICS.get(name, name)
        if topic not in TOPICS:
            raise ValueError(f"unknown topic {name!r}: use {', '.join(SHORT_TOPICS)}")
        out.append(topic)
    return tuple(out)


def make_config(args: argparse.Namespace) -> SubscriberConfig:
    if args.count is not None and args.count < 1:
        raise ValueError("--count must be at least 1")
    if args.timeout is not None and args.timeout <= 0:
        raise ValueError("--timeout must be a positive number of seconds")
    client = find_secret_file(args.curve_client_keys) if args.curve_client_keys else None
    return SubscriberConfig(
        endpoint=args.endpoint,
        topics=topic_filters(args.topics),
        curve_server_public_key_file=args.curve_server_key,
        curve_client_secret_key_file=client,
    )


def run(sub: Subscriber, *, as_json: bool, count: int | None, timeout_s: float | None) -> int:
    """Print messages until `count` of them, or until none arrives for `timeout_s`; returns the exit code."""
    seen = 0
    while count is None or seen < count:
        started = time.monotonic()
        try:
            msg = sub.receive(timeout_s)
        except MessageError as exc:
            print(f"qamoe-tap: skipped a message: {terminal_safe(str(exc), 200)}", file=sys.stderr)
            continue
        if msg is None:
            waited = time.monotonic() - started
            print(
                f"qamoe-tap: no message from {sub.config.endpoint} for {waited:.1f} s: is qamoe-live running "
                "and publishing there? (check --endpoint, --topics and, with CURVE, the keys)",
                file=sys.stderr,
            )
            return EXIT_TIMEOUT
        print(render_json(msg.payload) if as_json else render(msg), flush=True)
        seen += 1
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.nats:
            from edge.cli.tap_nats import run_nats

            return run_nats(args)
        if args.since or args.durable or args.subject != "qamoe.v1.>":
            raise ValueError("--subject, --since and --durable read from NATS: add --nats URL")
        config = make_config(args)
        with Subscriber(config) as sub:
            return run(sub, as_json=args.json, count=args.count, timeout_s=args.timeout)
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:  # e.g. `qamoe-tap | head`: the reader left, which is not an error
        sys.stderr.close()
        return EXIT_OK
    except (PublishError, CurveKeyError, ValueError) as exc:  # a CurveKeyError is not a PublishError
        print(f"qamoe-tap: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
