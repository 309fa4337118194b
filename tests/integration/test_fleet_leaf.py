"""A site behind a leaf node (docs/FLEET.md, "A site with a flaky uplink"): a hub `nats-server` with JetStream in
domain `hub` and a leafnode port, a site `nats-server` without JetStream whose leaf remote points at the hub.
A bridge that publishes to the site server (`--nats-domain hub`) gets every message into the hub's stream, and
`qamoe-tap --nats <site> --nats-domain hub` reads them back through the leaf. Without the domain the site has no
JetStream to offer and the bridge says so in one line."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.fleet import BridgeConfig, BridgeThread, NatsConfig, NatsUnavailableError
from tests.support.fleet import SyntheticNode, drain_durable, seqs_of
from tests.support.nats import NatsServer, free_port, nats_binary

BIN = Path(sys.executable).parent


class SiteServer:
    """A plain nats-server (no JetStream) whose only leaf remote is the hub's leafnode port."""

    def __init__(self, tmp: Path, hub_leaf_port: int) -> None:
        self.port = free_port()
        conf = tmp / "site.conf"
        conf.write_text(f'listen: 127.0.0.1:{self.port}\nserver_name: clinic-a\n'
                        f'leafnodes {{ remotes = [ {{ url: "nats-leaf://127.0.0.1:{hub_leaf_port}" }} ] }}\n')
        self.log = (tmp / "site.log").open("wb")
        self.proc = subprocess.Popen([nats_binary(), "-c", str(conf)], stdout=self.log, stderr=subprocess.STDOUT)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def wait_for_leaf(self, log: Path, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while "Leafnode connection created" not in log.read_text(errors="replace"):
            if time.monotonic() > deadline:
                raise AssertionError(f"the site's leaf connection did not come up: {log.read_text()[-1000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


@pytest.fixture()
def hub_and_site(tmp_path: Path):  # type: ignore[no-untyped-def]
    leaf_port = free_port()
    conf = tmp_path / "hub.conf"
    conf.write_text(f"jetstream {{ domain: hub }}\nleafnodes {{ listen: 127.0.0.1:{leaf_port} }}\n")
    hub = NatsServer(tmp_path / "hub", extra=("-c", str(conf))).start()
    site = SiteServer(tmp_path, leaf_port)
    try:
        site.wait_for_leaf(tmp_path / "site.log")
        yield hub, site
    finally:
        site.stop()
        hub.stop()


def test_a_bridge_at_the_site_fills_the_hubs_stream_through_the_leaf(hub_and_site) -> None:  # type: ignore[no-untyped-def]
    hub, site = hub_and_site
    node = SyntheticNode("cam0", rate_hz=50)
    bridge = BridgeThread(BridgeConfig(endpoints=(node.endpoint,), site="clinic-a", bridge_id="b1",
                                       nats=NatsConfig(url=site.url, js_domain="hub"))).start()
    try:
        node.publisher.wait_for_subscribers(1, 5)
        node.start()
        time.sleep(1.0)
        published = node.stop()
        time.sleep(0.3)
        stats = bridge.stop()
    finally:
        node.close()
    assert stats.published == published > 0 and stats.dropped == 0
    subject = "qamoe.v1.sentiment.clinic-a.cam0"
    assert seqs_of(drain_durable(hub.url, "at-hub", subject=subject), subject) == list(range(published))
    tap = subprocess.run([str(BIN / "qamoe-tap"), "--nats", site.url, "--nats-domain", "hub", "--subject", subject,
                          "--since", "all", "--count", str(published), "--json", "--timeout", "10"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert tap.returncode == 0, tap.stderr
    assert len(tap.stdout.splitlines()) == published


def test_without_the_domain_the_site_has_no_jetstream_and_says_so(hub_and_site) -> None:  # type: ignore[no-untyped-def]
    _, site = hub_and_site
    with pytest.raises(NatsUnavailableError, match="--nats-domain"):
        BridgeThread(BridgeConfig(endpoints=("tcp://127.0.0.1:1",), site="clinic-a", bridge_id="b1",
                                  nats=NatsConfig(url=site.url))).start()
