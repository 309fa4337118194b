"""`qamoe-live --nats URL`: the qamoe-bridge, in-process, for a single node. It connects before the models load
(a wrong URL or refused credentials fail at once with their exit code), reads the node's own ZeroMQ endpoint
and, when qamoe-live ends, sends what it still holds before closing."""

from __future__ import annotations

import argparse
import contextlib
import logging
import re
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from edge.errors import UsageError

if TYPE_CHECKING:
    from edge.fleet.runner import BridgeThread
    from edge.publish.publisher import Publisher

log = logging.getLogger(__name__)
SUBSCRIBE_WAIT_S = 2.0  # for the bridge's subscription after the bind (it retries every 5 ms meanwhile)
SUBSCRIBE_SETTLE_S = 0.1  # another subscriber (qamoe-tap) may have been first: the bridge's follows within ms


def add_arguments(p: argparse.ArgumentParser) -> None:
    from edge.cli.nats_args import add_nats_arguments

    add_nats_arguments(p, url_default=None)
    p.add_argument("--site", default="local", help="with --nats: the site token of the subjects (default local)")


def _local_endpoint(endpoint: str) -> str:
    """Where the node's own publisher can be reached from this process (a wildcard bind -> loopback)."""
    return re.sub(r"^tcp://(\*|0\.0\.0\.0):", "tcp://127.0.0.1:", endpoint)


@contextlib.contextmanager
def bridge_for(args: argparse.Namespace, error: type[UsageError], source_id: str) \
        -> Iterator[BridgeThread | None]:
    """A started in-process bridge with --nats (None without); stopped, after draining, at the end. Its
    health goes to qamoe.v1.health.<site>.<source>-bridge, beside the node's own qamoe.v1.health.<site>.<source>."""
    if not args.nats:
        yield None
        return
    if args.curve_server_key is not None:
        raise error("--nats reads the node's own stream, which CURVE closes to it: run a qamoe-bridge with "
                    "client keys beside it instead (docs/FLEET.md)")
    from edge.cli.nats_args import nats_config
    from edge.fleet.config import BridgeConfig, StreamSettings
    from edge.fleet.runner import BridgeThread
    from edge.fleet.subjects import sanitise_source

    bridge_id = f"{sanitise_source(source_id) or 'node'}-bridge"  # <= 57 + 7 characters
    cfg = BridgeConfig(
        endpoints=(_local_endpoint(args.endpoint),), site=args.site, bridge_id=bridge_id,
        nats=nats_config(args, f"qamoe-live {args.site}/{bridge_id}"), stream=StreamSettings(name=args.stream),
        zmq_reconnect_max_ms=5,  # loopback: retry every 5 ms until the publisher binds, no backoff
    )
    bridge = BridgeThread(cfg, drain_s=5.0 if args.fast else 1.5).start()
    try:
        yield bridge
    finally:
        stats = bridge.stop()
        log.info("NATS: published %d, dropped %d, lost upstream %d, %d still buffered", stats.published,
                 stats.dropped, stats.lost_upstream, stats.buffered)


def wait_for_bridge(bridge: BridgeThread | None, pub: Publisher) -> None:
    """Hold the first message until the bridge has subscribed (ZeroMQ's slow joiner would lose it)."""
    if bridge is None:
        return
    if not pub.wait_for_subscribers(1, SUBSCRIBE_WAIT_S):
        log.warning("the NATS bridge has not subscribed within %.1f s: the first messages may miss NATS",
                    SUBSCRIBE_WAIT_S)
    time.sleep(SUBSCRIBE_SETTLE_S)
