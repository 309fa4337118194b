"""NATS over TLS, nats-py's conventions (issue 17: "credentials / TLS options follow nats-py's conventions"): a
real `nats-server --tls` with a certificate signed by a throwaway CA made here with openssl; a bridge and a real
`qamoe-record --nats tls://... --nats-tls-ca CA` process get every message through it; without the CA (or with
another one) the connection is refused in one line with its exit code, and no file is written."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.fleet import BridgeConfig, BridgeThread, NatsConfig
from edge.record.reader import read_recording
from tests.support.fleet import SyntheticNode
from tests.support.nats import NatsServer

BIN = Path(sys.executable).parent


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca_and_server_cert(d: Path, name: str = "ca") -> tuple[Path, Path, Path]:
    """A CA and, signed by it, a certificate for 127.0.0.1: (ca.pem, server.pem, server.key)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl not found: it makes the test's certificates")
    d.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem",
             "-days", "1", "-subj", f"/CN=qamoe-test-{name}", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=127.0.0.1", cwd=d)
    _openssl("x509", "-req", "-in", "server.csr", "-CA", f"{name}.pem", "-CAkey", f"{name}.key",
             "-CAcreateserial", "-out", "server.pem", "-days", "1", "-extfile", "san.ext", cwd=d)
    return d / f"{name}.pem", d / "server.pem", d / "server.key"


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
