"""`qamoe-bridge`: read qamoe-live nodes' ZeroMQ streams and publish every message to NATS JetStream.

  qamoe-bridge --nats nats://hub:4222 --site clinic-a                       the node on this machine
  qamoe-bridge --nats nats://hub:4222 --site lab --endpoint tcp://booth1:5556 --endpoint tcp://booth2:5556
  qamoe-tap --nats nats://hub:4222 --subject 'qamoe.v1.sentiment.>'         watch what arrives

Subjects: qamoe.v1.<topic>.<site>.<source> (the bridge's own health: qamoe.v1.health.<site>.<bridge-id>);
each message carries a Nats-Msg-Id from source, topic, seq and send time, so JetStream stores it once.
docs/FLEET.md has the scheme, retention, de-duplication and sizing.

Exit codes: 0 ended (--duration); 2 bad arguments or configuration (a site, bridge or source id that is not a
subject token, CURVE key files, a NATS URL that does not parse, credentials the server refuses, a stream that
exists with other settings); 5 no NATS server answered in time, or it has no JetStream; 129/130/143 SIGHUP,
SIGINT, SIGTERM (after sending what is buffered, up to --drain seconds)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from edge.cli.nats_args import (
    add_nats_arguments,
    add_stream_arguments,
    default_bridge_id,
    nats_config,
    stream_settings,
)
from edge.errors import EXIT_OK, EXIT_UNEXPECTED, EXIT_USAGE, QamoeLiveError
from edge.publish import DEFAULT_ENDPOINT

EXIT_SIGNAL: dict[int, int] = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}
log = logging.getLogger("qamoe-bridge")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="qamoe-bridge", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    z = p.add_argument_group("ZeroMQ (the nodes)")
    z.add_argument("--endpoint", action="append", metavar="URL",
                   help=f"a node's publisher; repeat for several (default {DEFAULT_ENDPOINT})")
    z.add_argument("--curve-server-key", type=Path, metavar="FILE", help="the node's public key (NAME.key)")
    z.add_argument("--curve-client-keys", type=Path, metavar="PATH",
                   help="this bridge's key pair: a NAME.key_secret file or a directory holding one")
    s = p.add_argument_group("subjects")
    s.add_argument("--site", default="local", help="site token in every subject (default local)")
    s.add_argument("--bridge-id", default=None, help="this bridge's token for its health (default: host name)")
    s.add_argument("--source-id", default=None,
                   help="subject token for the node instead of its messages' source_id (one --endpoint)")
    add_nats_arguments(p)
    add_stream_arguments(p)
    b = p.add_argument_group("buffering")
    b.add_argument("--buffer", type=int, default=10_000, metavar="N",
                   help="messages kept while NATS is away; full, the oldest go (counted) (default 10000)")
    b.add_argument("--health-interval", type=float, default=1.0, metavar="S", help="bridge health every S s")
    b.add_argument("--drain", type=float, default=5.0, metavar="S", help="at the end, send what is buffered for up to S s")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging (with tracebacks)")
    p.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    return p


def make_config(args: argparse.Namespace):  # -> BridgeConfig (imported lazily: nats-py loads on use)
    from edge.fleet.config import BridgeConfig
    from edge.fleet.errors import FleetConfigError
    from edge.publish.curve import find_secret_file

    if args.duration is not None and not args.duration > 0:
        raise FleetConfigError("--duration: give a positive number of seconds")
    if not 0 <= args.drain <= 600:
        raise FleetConfigError("--drain: choose 0-600 s")
    bridge_id = args.bridge_id or default_bridge_id()
    return BridgeConfig(
        endpoints=tuple(args.endpoint or (DEFAULT_ENDPOINT,)), site=args.site, bridge_id=bridge_id,
        nats=nats_config(args, f"qamoe-bridge {args.site}/{bridge_id}"), stream=stream_settings(args),
        source_id=args.source_id, curve_server_public_key_file=args.curve_server_key,
        curve_client_secret_key_file=find_secret_file(args.curve_client_keys) if args.curve_client_keys else None,
        buffer_capacity=args.buffer, health_interval_s=args.health_interval,
    )


async def serve(args: argparse.Namespace) -> int:
    from edge.fleet.bridge import Bridge

    bridge = Bridge(make_config(args))
    await bridge.open()
    stop, caught = asyncio.Event(), []

    def on_signal(sig: int) -> None:
        caught.append(sig)
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in EXIT_SIGNAL:
        loop.add_signal_handler(sig, on_signal, sig)
    if args.duration is not None:
        loop.call_later(args.duration, stop.set)
    stats = await bridge.run(stop, args.drain)
    log.info("received %d, published %d (duplicates %d), dropped %d, lost upstream %d", stats.received,
             stats.published, stats.duplicates, stats.dropped, stats.lost_upstream)
    return EXIT_SIGNAL[caught[0]] if caught else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if not args.verbose:  # nats-py reports each failed connection attempt with a traceback at ERROR
        logging.getLogger("nats").setLevel(logging.CRITICAL)
    try:
        return asyncio.run(serve(args))
    except KeyboardInterrupt:
        return EXIT_SIGNAL[signal.SIGINT]
    except Exception as exc:
        code = exc.exit_code if isinstance(exc, QamoeLiveError) else EXIT_USAGE if isinstance(exc, ValueError) \
            else None
        if code is None:
            log.critical("unexpected error: %s", exc, exc_info=True)
            return EXIT_UNEXPECTED
        log.debug("details", exc_info=True)
        print(f"qamoe-bridge: {exc}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
