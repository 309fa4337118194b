"""NATS client authentication, nats-py's conventions (issue 17: "credentials / TLS options follow nats-py's
conventions"; "bad credentials: one-line errors, documented exit codes"), against a real nats-server:

- mutual TLS: the server's tls block verifies clients (`--tlsverify` with the test CA); `qamoe-bridge` and
  `qamoe-tap` with `--nats-tls-cert/--nats-tls-key` get every message through; no client certificate, or one
  from another CA, is refused in one line, exit 2, within the timeout;
- a `.creds` file: the server in operator mode (operator JWT, account JWT preloaded in the MEMORY resolver,
  tests/support/natsjwt.py); `qamoe-bridge` and `qamoe-record` with `--nats-creds` deliver every message; no
  credentials, or a user of an account the server does not know, are refused in one line, exit 2; a malformed
  file is refused in one line, exit 2, before any connection (nats-py hangs or raises on some)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from edge.fleet.config import NatsConfig
from edge.fleet.errors import NatsAuthError
from edge.fleet.natsconn import connect
from edge.record.reader import read_recording
from tests.support import natsjwt
from tests.support.fleet import SyntheticNode, one_line_error, run_bridge, start_bridge
from tests.support.nats import NatsServer
from tests.support.tls import make_ca_and_server_cert, make_client_cert

BIN = Path(sys.executable).parent
SUBJECT = "qamoe.v1.sentiment.>"
REFUSED_WITHIN_S = 10.0  # --nats-timeout 2: two attempts' worth plus process start, with room on a busy machine


def _run(tool: str, *args: str | Path, timeout_s: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / tool), *map(str, args)], capture_output=True, text=True, timeout=timeout_s,
                          stdin=subprocess.DEVNULL, check=False)


def _bridge_a_node(url: str, *nats_args: str | Path) -> int:
    """A synthetic node publishing for 1 s through a `qamoe-bridge` process into the server at `url`; the
    bridge is stopped with SIGTERM (it drains first: exit 143). Returns how many messages the node sent."""
    node = SyntheticNode("cam0", rate_hz=50)
    bridge = start_bridge("--nats", url, *map(str, nats_args), "--endpoint", node.endpoint, "--site", "lab",
                          "--bridge-id", "b1", "--nats-timeout", "2")
    try:
        if not node.publisher.wait_for_subscribers(1, 20):
            bridge.kill()
            pytest.fail(f"the bridge never subscribed: {bridge.communicate(timeout=10)[1]}")
        node.start()
        time.sleep(1.0)
        published = node.stop()
        time.sleep(0.5)
        bridge.send_signal(signal.SIGTERM)
        _, err = bridge.communicate(timeout=30)
    finally:
        node.close()
        if bridge.poll() is None:
            bridge.kill()
            bridge.wait(10)
    assert bridge.returncode == 143, err
    assert "Traceback" not in err and " WARNING " not in err and published > 0, err
    return published


def _refused(tool: str, *args: str | Path, words: tuple[str, ...]) -> None:
    started = time.monotonic()
    out = _run(tool, *args, "--nats-timeout", "2", timeout_s=60)
    one_line_error(out, 2, *words)
    assert time.monotonic() - started < REFUSED_WITHIN_S, out.stderr


# --- mutual TLS -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca: Path
    cert: Path  # a client certificate the server's CA signed
    key: Path
    other_cert: Path  # a client certificate another CA signed
    other_key: Path


@pytest.fixture()
def mtls_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    ca, server_cert, server_key = make_ca_and_server_cert(tmp_path / "pki")
    cert, key = make_client_cert(tmp_path / "pki")
    make_ca_and_server_cert(tmp_path / "other", name="other")
    other_cert, other_key = make_client_cert(tmp_path / "other", ca="other")
    server = NatsServer(tmp_path / "nats", extra=("--tlsverify", "--tlscert", str(server_cert), "--tlskey",
                                                  str(server_key), "--tlscacert", str(ca))).start()
    try:
        yield server, Pki(ca, cert, key, other_cert, other_key)
    finally:
        server.stop()


def test_bridge_and_tap_with_a_client_certificate_get_every_message(mtls_server) -> None:  # type: ignore[no-untyped-def]
    server, pki = mtls_server
    url = f"tls://127.0.0.1:{server.port}"
    tls = ("--nats-tls-ca", pki.ca, "--nats-tls-cert", pki.cert, "--nats-tls-key", pki.key)
    published = _bridge_a_node(url, *tls)
    out = _run("qamoe-tap", "--nats", url, *tls, "--subject", SUBJECT, "--since", "all", "--json",
               "--count", str(published), "--timeout", "5")
    assert out.returncode == 0 and not out.stderr.strip(), out.stderr  # not even asyncio's TLS-close warning
    assert [json.loads(line)["seq"] for line in out.stdout.splitlines()] == list(range(published))


def test_no_client_certificate_or_one_from_another_ca_is_refused_in_one_line(mtls_server) -> None:  # type: ignore[no-untyped-def]
    server, pki = mtls_server
    url = f"tls://127.0.0.1:{server.port}"
    for client in ((), ("--nats-tls-cert", pki.other_cert, "--nats-tls-key", pki.other_key)):
        _refused("qamoe-bridge", "--nats", url, "--nats-tls-ca", pki.ca, *client, words=("TLS", "--nats-tls-cert"))
        _refused("qamoe-tap", "--nats", url, "--nats-tls-ca", pki.ca, *client, words=("TLS", "--nats-tls-cert"))


def test_a_refused_client_certificate_is_never_taken_for_an_absent_server(mtls_server) -> None:  # type: ignore[no-untyped-def]
    """The server's verdict reaches the client as an alert or as a cut connection, whichever wins the race
    (TLS 1.3): both must come out as the TLS error (exit 2), never as 'no NATS server answered' (exit 5)."""
    server, pki = mtls_server
    url = f"tls://127.0.0.1:{server.port}"
    configs = [NatsConfig(url=url, tls_ca=pki.ca, connect_timeout_s=2),
               NatsConfig(url=url, tls_ca=pki.ca, tls_cert=pki.other_cert, tls_key=pki.other_key,
                          connect_timeout_s=2)]

    async def attempt(cfg: NatsConfig) -> BaseException | None:
        try:
            nc = await connect(cfg)
        except Exception as exc:  # noqa: BLE001 - the test looks at which error it was
            return exc
        await nc.close()
        return None

    async def attempts() -> list[BaseException | None]:
        return [await attempt(cfg) for _ in range(10) for cfg in configs]

    got = asyncio.run(attempts())
    assert all(isinstance(e, NatsAuthError) for e in got), [repr(e) for e in got]


# --- a .creds file, the server in operator (JWT) mode --------------------------------------------------------


@pytest.fixture()
def jwt_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    """(server, creds of a user of the server's account, creds of a user of an account it does not know)."""
    op, acct, stranger = natsjwt.operator(), natsjwt.account(), natsjwt.account()
    conf = natsjwt.server_config(tmp_path / "server.conf", op, {acct.public: natsjwt.account_jwt(op, acct)})
    good = natsjwt.write_creds(tmp_path / "bridge.creds", acct)
    unknown = natsjwt.write_creds(tmp_path / "stranger.creds", stranger)
    server = NatsServer(tmp_path / "nats", extra=("-c", str(conf))).start()
    try:
        yield server, good, unknown
    finally:
        server.stop()


def test_bridge_and_recorder_with_a_creds_file_get_every_message(jwt_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server, creds, _ = jwt_server
    published = _bridge_a_node(server.url, "--nats-creds", creds)
    done = _run("qamoe-record", tmp_path / "rec", "--nats", server.url, "--nats-creds", creds, "--subject", SUBJECT,
                "--since", "all", "--duration", "2", timeout_s=60)
    assert done.returncode == 0, done.stderr
    assert [r.payload["seq"] for r in read_recording(tmp_path / "rec").records] == list(range(published))


def test_no_creds_or_a_user_the_server_does_not_know_is_refused_in_one_line(jwt_server) -> None:  # type: ignore[no-untyped-def]
    server, _, unknown = jwt_server
    _refused("qamoe-bridge", "--nats", server.url, words=("refused the credentials",))  # auth is really on
    _refused("qamoe-bridge", "--nats", server.url, "--nats-creds", unknown,
             words=("refused the credentials", "--nats-creds"))
    _refused("qamoe-tap", "--nats", server.url, "--nats-creds", unknown, words=("refused the credentials",))


def _malformed(good: str, case: str) -> str:
    """`good` (a .creds file's text) damaged as `case` says."""
    lines = good.split("\n")
    jwt_at = next(i for i, line in enumerate(lines) if "BEGIN NATS USER JWT" in line) + 1
    seed_at = next(i for i, line in enumerate(lines) if "BEGIN USER NKEY SEED" in line) + 1
    if case == "empty":
        return ""
    if case == "no JWT block":
        return "\n".join(lines[jwt_at + 2:])
    if case == "no seed block":
        return "\n".join(lines[:jwt_at + 2])
    if case == "seed is not a seed":
        lines[seed_at] = "SUNOTASEED"
    elif case == "account seed":
        lines[seed_at] = natsjwt.account().seed
    elif case == "another user's seed":
        lines[seed_at] = natsjwt.user().seed
    elif case == "JWT is not a JWT":
        lines[jwt_at] = "not-a-jwt"
    elif case == "CRLF":
        return "\r\n".join(lines)
    return "\n".join(lines)


@pytest.mark.parametrize(("case", "word"), [
    ("empty", "no -----BEGIN NATS USER JWT-----"), ("no JWT block", "no -----BEGIN NATS USER JWT-----"),
    ("no seed block", "no -----BEGIN USER NKEY SEED-----"), ("seed is not a seed", "seed does not decode"),
    ("account seed", "not a user seed"), ("another user's seed", "not the key of the JWT's user"),
    ("JWT is not a JWT", "JWT does not decode"), ("CRLF", "CRLF"),
])
def test_a_malformed_creds_file_is_refused_in_one_line(jwt_server, tmp_path: Path, case: str, word: str) -> None:  # type: ignore[no-untyped-def]
    server, creds, _ = jwt_server
    bad = tmp_path / "bad.creds"
    text = _malformed(creds.read_text(), case)
    bad.write_bytes(text.encode())
    started = time.monotonic()
    out = run_bridge("--nats", server.url, "--nats-creds", str(bad), "--nats-timeout", "2", timeout_s=60)
    one_line_error(out, 2, "--nats-creds", word)
    assert time.monotonic() - started < REFUSED_WITHIN_S, out.stderr
    seeds = [line.strip() for line in text.splitlines() if line.startswith("S") and len(line.strip()) > 8]
    assert not any(seed in out.stderr for seed in seeds)  # a seed is a secret: never echoed
