"""`qamoe-web`: watch a qamoe-live node in a browser: a live page over its ZeroMQ stream.

  qamoe-web                                   serve http://127.0.0.1:8765/?token=... for tcp://127.0.0.1:5556
  qamoe-web --endpoint tcp://10.0.0.5:5556 --curve-server-key server.key --curve-client-keys keys/web
  QAMOE_WEB_TOKEN=... qamoe-web --host 0.0.0.0   remote viewers (a token of your own is then required)
  qamoe-web --frames                          also show the camera, when the node shares it (--share-frames)
  qamoe-web --nats nats://hub:4222 --subject 'qamoe.v1.*.clinic-a.room1'   one node behind a qamoe-bridge

Exit codes: 0 stopped (Ctrl-C, SIGTERM); 2 bad arguments (a host that is not an IP address, a bind facing the
network without a token, a token that is too short, CURVE key files, NATS credentials); 5 the page's port
cannot be bound (in use, an address not on this machine, a privileged port), or (with --nats) no NATS server
answered or it has no such stream."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from edge.cli.nats_args import add_nats_arguments, nats_config
from edge.errors import EXIT_OK, QamoeLiveError
from edge.publish import (
    DEFAULT_ENDPOINT,
    TOPIC_HEALTH,
    TOPIC_PREFIX,
    TOPIC_SENTIMENT,
    TOPIC_TRANSCRIPT,
    SubscriberConfig,
)
from edge.publish.curve import find_secret_file
from edge.web.auth import resolve_token
from edge.web.config import DEFAULT_HOST, DEFAULT_PORT, WebConfig
from edge.web.errors import WebConfigError
from edge.web.server import WebServer

if TYPE_CHECKING:
    from edge.fleet.consume import ReaderConfig

TOKEN_ENV = "QAMOE_WEB_TOKEN"
log = logging.getLogger("qamoe-web")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qamoe-web", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1],
    )  # fmt: skip
    p.add_argument(
        "--endpoint", default=DEFAULT_ENDPOINT, help=f"the node's endpoint (default {DEFAULT_ENDPOINT})"
    )
    p.add_argument(
        "--host", default=DEFAULT_HOST, help=f"address to serve on (default {DEFAULT_HOST}: this machine)"
    )
    p.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free)"
    )
    p.add_argument(
        "--token",
        default=None,
        help=f"access token (16+ of A-Z a-z 0-9 _ -; default ${TOKEN_ENV}, else a generated one; "
        "required with a --host that faces the network)",
    )
    p.add_argument("--curve-server-key", type=Path, metavar="FILE", help="the node's public key (NAME.key)")
    p.add_argument(
        "--curve-client-keys",
        type=Path,
        metavar="PATH",
        help="this viewer's key pair: a NAME.key_secret file or a directory holding one",
    )
    p.add_argument(
        "--frames",
        action="store_true",
        help="show the node's camera frames with the face box (the node must run qamoe-live --share-frames). "
        "Off by default: frames are then not even received, and no picture reaches a browser",
    )
    add_nats_arguments(p, url_default=None)  # --nats URL: read one node's bridged stream from JetStream
    p.add_argument("--subject", default="qamoe.v1.>", help="with --nats: the node's subjects, e.g. "
                   "'qamoe.v1.*.SITE.SOURCE' (default qamoe.v1.>: the first source that arrives is shown)")
    p.add_argument("-v", "--verbose", action="store_true", help="log connections and counters to stderr")
    return p


def make_configs(args: argparse.Namespace) -> tuple[WebConfig, SubscriberConfig | ReaderConfig, bool]:
    token, generated = resolve_token(args.token or os.environ.get(TOKEN_ENV) or None, args.host)
    web = WebConfig(token=token, host=args.host, port=args.port, frames=args.frames)
    if args.nats:
        from edge.fleet.consume import ReaderConfig

        if args.curve_server_key or args.curve_client_keys:
            raise WebConfigError("--curve-* keys are for a node's ZeroMQ socket; with --nats use the NATS options")
        return web, ReaderConfig(nats=nats_config(args, "qamoe-web"), subject=args.subject,
                                 stream=args.stream), generated
    if args.subject != "qamoe.v1.>":
        raise WebConfigError("--subject reads from NATS: add --nats URL")
    client = find_secret_file(args.curve_client_keys) if args.curve_client_keys else None
    sub = SubscriberConfig(
        endpoint=args.endpoint,
        # without --frames the frame topic is not subscribed to: the node never sends a picture to this server
        topics=(TOPIC_PREFIX,) if args.frames else (TOPIC_SENTIMENT, TOPIC_TRANSCRIPT, TOPIC_HEALTH),
        curve_server_public_key_file=args.curve_server_key,
        curve_client_secret_key_file=client,
    )
    return web, sub, generated


async def serve(server: WebServer, generated: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def announce(url: str) -> None:
        print(f"qamoe-web: open {url}", flush=True)
        if generated:
            print(
                "qamoe-web: (a new token each start; pass --token or $QAMOE_WEB_TOKEN to keep one)",
                flush=True,
            )
        if not server.config.is_loopback:
            log.warning(
                "serving plain HTTP on %s: the token and the stream travel unencrypted; prefer an SSH "
                "tunnel (ssh -L) or a TLS proxy",
                server.config.host,
            )

    await server.run(stop, on_listening=announce)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        web, sub, generated = make_configs(args)
        asyncio.run(serve(WebServer(web, sub), generated))
    except KeyboardInterrupt:
        return EXIT_OK
    except QamoeLiveError as exc:
        if exc.exit_code is None:
            raise
        log.debug("details", exc_info=True)
        print(f"qamoe-web: {exc}", file=sys.stderr)
        return exc.exit_code
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
