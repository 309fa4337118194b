"""CURVE: key generation, and a publisher with an allow-list that admits only known client keys (loopback)."""

from __future__ import annotations

import stat
import threading
import time
from pathlib import Path

import pytest
import zmq.auth

from edge.cli import keys as keys_cli
from edge.publish import CurveKeyError, Publisher, PublisherConfig, Subscriber, SubscriberConfig
from edge.publish.curve import allowed_client_keys, generate_keypair, load_secret_pair
from edge.publish.examples import example_health


def test_generated_keys_are_zeromq_certificates_with_a_private_secret(tmp_path: Path) -> None:
    files = generate_keypair(tmp_path / "k", "server")
    assert files.public.name == "server.key" and files.secret.name == "server.key_secret"
    public, secret = zmq.auth.load_certificate(files.secret)
    assert zmq.auth.load_certificate(files.public) == (public, None)
    assert zmq.curve_public(secret) == public  # the pair belongs together
    assert stat.S_IMODE(files.secret.stat().st_mode) == 0o600
    assert b"secret-key" not in files.public.read_bytes()
    with pytest.raises(CurveKeyError, match="--force"):
        generate_keypair(tmp_path / "k", "server")
    assert generate_keypair(tmp_path / "k", "server", overwrite=True).secret.exists()
    with pytest.raises(CurveKeyError, match="key name"):
        generate_keypair(tmp_path, "../evil")


def test_keys_cli_generates_and_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert keys_cli.main(["generate", str(tmp_path), "--name", "tap"]) == 0
    assert "tap.key_secret" in capsys.readouterr().out
    assert keys_cli.main(["generate", str(tmp_path), "--name", "tap"]) == 2
    assert "already exist" in capsys.readouterr().err
    assert keys_cli.main(["show", str(tmp_path / "tap.key")]) == 0
    assert len(capsys.readouterr().out.strip()) == 40


def test_key_errors_name_the_fix(tmp_path: Path) -> None:
    pair = generate_keypair(tmp_path, "a")
    with pytest.raises(CurveKeyError, match="key_secret"):
        load_secret_pair(pair.public)
    with pytest.raises(CurveKeyError, match="qamoe-keys generate"):
        load_secret_pair(tmp_path / "missing.key_secret")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CurveKeyError, match="no one could subscribe"):
        allowed_client_keys(tmp_path / "empty")
    with pytest.raises(CurveKeyError, match="does not exist"):
        allowed_client_keys(tmp_path / "nope")


def test_only_allowed_client_keys_receive(tmp_path: Path) -> None:
    server = generate_keypair(tmp_path / "server", "server")
    allowed = generate_keypair(tmp_path / "clients", "allowed")
    stranger = generate_keypair(tmp_path / "elsewhere", "stranger")
    allow_dir = tmp_path / "allowed_clients"
    allow_dir.mkdir()
    (allow_dir / "allowed.key").write_bytes(allowed.public.read_bytes())

    config = PublisherConfig(
        endpoint="tcp://127.0.0.1:0",
        curve_server_secret_key_file=server.secret,
        curve_allowed_clients_dir=allow_dir,
    )
    stop = threading.Event()
    with Publisher(config) as pub:

        def curve_client(keys: Path) -> SubscriberConfig:
            return SubscriberConfig(
                endpoint=pub.endpoint,
                curve_server_public_key_file=server.public,
                curve_client_secret_key_file=keys,
            )

        def beat() -> None:
            while not stop.is_set():
                pub.publish(example_health())
                time.sleep(0.02)

        worker = threading.Thread(target=beat, daemon=True)
        subs = [
            Subscriber(curve_client(allowed.secret)),
            Subscriber(curve_client(stranger.secret)),
            Subscriber(SubscriberConfig(endpoint=pub.endpoint)),
        ]
        worker.start()
        try:
            good = subs[0].receive(10)
            # The denied ones were connected all along; give them as long again while the stream flows.
            denied = [sub.receive(1.0) for sub in subs[1:]]
            still_flowing = subs[0].receive(5)
        finally:
            stop.set()
            worker.join(5)
            for sub in subs:
                sub.close()
    assert good is not None and good.payload["topic"] == "qamoe.v1.health"
    assert denied == [None, None], "an unknown key or a plaintext client received data"
    assert still_flowing is not None


def test_publisher_with_bad_curve_files_fails_cleanly(tmp_path: Path) -> None:
    allow_dir = tmp_path / "allowed"
    allow_dir.mkdir()
    client = generate_keypair(tmp_path, "client")
    (allow_dir / "client.key").write_bytes(client.public.read_bytes())
    config = PublisherConfig(
        endpoint="tcp://127.0.0.1:0",
        curve_server_secret_key_file=client.public,
        curve_allowed_clients_dir=allow_dir,
    )
    with pytest.raises(CurveKeyError, match="key_secret"):
        Publisher(config)  # the authenticator thread it started is stopped again: nothing left to hang
    assert not [t for t in threading.enumerate() if "Authenticator" in type(t).__name__]
