"""NATS over TLS, nats-py's conventions (issue 17: "credentials / TLS options follow nats-py's conventions"): a
real `nats-server --tls` with a certificate signed by a throwaway CA made here with openssl; a bridge and a real
`qamoe-record --nats tls://... --nats-tls-ca CA` process get every message through it; without the CA (or with
another one) the connection is refused in one line with its exit code, and no file is written; asked for TLS,
a server without it is refused too (nats-py alone would go on in plain text)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import nats
import pytest

from edge.fleet import BridgeConfig, BridgeThread, NatsConfig
from edge.record.reader import read_recording
from tests.support.fleet import SyntheticNode, one_line_error, run_bridge
from tests.support.live_fixtures import free_endpoint
from tests.support.nats import NatsServer
from tests.support.tls import make_ca_and_server_cert

BIN = Path(sys.executable).parent


@pytest.fixture()
def tls_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    ca, cert, key = make_ca_and_server_cert(tmp_path / "pki")
    server = NatsServer(tmp_path / "nats", extra=("--tls", "--tlscert", str(cert), "--tlskey", str(key))).start()
    try:
        yield server, ca
    finally:
        server.stop()


def _record(*args: str | Path) -> subprocess.CompletedProcess[str]:
    argv = [str(BIN / "qamoe-record"), *map(str, args)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_bridge_and_recorder_over_tls_get_every_message(tls_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server, ca = tls_server
    url = f"tls://127.0.0.1:{server.port}"
    node = SyntheticNode("cam0", rate_hz=50)
    bridge = BridgeThread(BridgeConfig(endpoints=(node.endpoint,), site="lab", bridge_id="b1",
                                       nats=NatsConfig(url=url, tls_ca=ca))).start()
    try:
        node.publisher.wait_for_subscribers(1, 5)
        node.start()
        time.sleep(1.0)
        published = node.stop()
        time.sleep(0.3)
        stats = bridge.stop()
    finally:
        node.close()
    assert stats.published == published > 0
    done = _record(tmp_path / "rec", "--nats", url, "--nats-tls-ca", ca, "--subject", "qamoe.v1.sentiment.>",
                   "--since", "all", "--duration", "2")
    assert done.returncode == 0, done.stderr
    assert [r.payload["seq"] for r in read_recording(tmp_path / "rec").records] == list(range(published))


def test_a_server_certificate_not_from_the_given_ca_is_refused_in_one_line(tls_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server, _ = tls_server
    other_ca, _, _ = make_ca_and_server_cert(tmp_path / "other", name="other")
    url = f"tls://127.0.0.1:{server.port}"
    for extra in (("--nats-tls-ca", str(other_ca)), ()):  # another CA; the system's CAs only
        done = _record(tmp_path / "rec", "--nats", url, *extra, "--nats-timeout", "2", "--duration", "1")
        assert done.returncode == 2, (extra, done.returncode, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
        assert "TLS" in done.stderr, done.stderr
    assert not (tmp_path / "rec").exists() or not list((tmp_path / "rec").glob("*.jsonl"))


def test_tls_options_against_a_server_without_tls_fail_instead_of_going_plain(nats_server: NatsServer,
                                                                               tmp_path: Path) -> None:
    """nats-py upgrades only when the server asks for TLS; asked for TLS, a bridge must not carry on in plain text
    (and creates no stream)."""
    ca, _, _ = make_ca_and_server_cert(tmp_path / "pki")
    for url in (f"tls://127.0.0.1:{nats_server.port}", nats_server.url):
        out = run_bridge("--nats", url, "--nats-tls-ca", str(ca), "--nats-timeout", "2",
                         "--endpoint", free_endpoint())
        one_line_error(out, 2, "does not offer TLS")

    async def streams() -> list[str]:
        nc = await nats.connect(nats_server.url)
        try:
            return [info.config.name for info in await nc.jetstream().streams_info()]
        finally:
            await nc.close()

    assert asyncio.run(streams()) == []
