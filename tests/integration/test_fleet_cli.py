"""Bad input to the NATS commands (issue 17): each a one-line error with its documented exit code, quickly,
no traceback, nothing written. qamoe-bridge / qamoe-tap --nats / qamoe-live --nats as processes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import nats
import pytest

from tests.support.fleet import one_line_error as _one_line_error
from tests.support.fleet import run_bridge
from tests.support.live_fixtures import GRID, free_endpoint
from tests.support.nats import NatsServer, free_port


def _tap(*args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "qamoe-tap"
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=30, check=False)


def test_unreachable_nats_is_exit_5_within_the_timeout() -> None:
    t0 = time.monotonic()
    out = run_bridge("--nats", f"nats://127.0.0.1:{free_port()}", "--nats-timeout", "1")
    _one_line_error(out, 5, "no NATS server answered", "nats-server -js")
    assert time.monotonic() - t0 < 10


def test_unroutable_nats_times_out_with_exit_5() -> None:
    t0 = time.monotonic()
    out = run_bridge("--nats", "nats://10.255.255.1:4222", "--nats-timeout", "1")
    _one_line_error(out, 5, "within 1 s")
    assert time.monotonic() - t0 < 10


@pytest.mark.parametrize("url", ["http://127.0.0.1:4222", "nats://", "nats://host:notaport"])
def test_a_nats_url_that_does_not_parse_is_exit_2(url: str) -> None:
    _one_line_error(run_bridge("--nats", url), 2, "--nats")


@pytest.mark.parametrize(("flag", "value"), [("--source-id", "room.1"), ("--source-id", "cam*"),
                                             ("--site", "a b"), ("--bridge-id", "x>"), ("--site", "")])
def test_a_bad_subject_token_is_exit_2(flag: str, value: str) -> None:
    _one_line_error(run_bridge("--nats", "nats://127.0.0.1:4222", flag, value), 2, flag, "subject token")


def test_refused_credentials_are_exit_2(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "auth", extra=("--user", "alice", "--pass", "secret")).start()
    try:
        out = run_bridge("--nats", f"nats://alice:wrong@127.0.0.1:{server.port}")
        _one_line_error(out, 2, "refused the credentials")
        assert "wrong" not in out.stderr  # the password is not echoed
        out = run_bridge("--nats", f"nats://alice:secret@127.0.0.1:{server.port}", "--duration", "0.5")
        assert out.returncode == 0, out.stderr
    finally:
        server.stop()


def test_a_missing_creds_file_is_exit_2(tmp_path: Path) -> None:
    _one_line_error(run_bridge("--nats-creds", str(tmp_path / "none.creds")), 2, "--nats-creds", "no such file")


def test_a_conflicting_stream_is_exit_2_and_left_unchanged(nats_server: NatsServer) -> None:
    ok = run_bridge("--nats", nats_server.url, "--max-age", "1h", "--endpoint", free_endpoint(), "--duration", "0.3")
    assert ok.returncode == 0, ok.stderr
    out = run_bridge("--nats", nats_server.url, "--max-age", "2h", "--endpoint", free_endpoint())
    _one_line_error(out, 2, "stream QAMOE exists with other settings", "max_age 3600 s instead of 7200 s")

    async def info() -> float:
        nc = await nats.connect(nats_server.url)
        got = await nc.jetstream().stream_info("QAMOE")
        await nc.close()
        return got.config.max_age or 0.0

    assert asyncio.run(info()) == 3600


def test_tap_nats_errors(nats_server: NatsServer) -> None:
    _one_line_error(_tap("--nats", f"nats://127.0.0.1:{free_port()}", "--nats-timeout", "1"), 5,
                    "no NATS server answered")
    _one_line_error(_tap("--nats", nats_server.url, "--stream", "NOPE"), 5, "no stream NOPE")
    _one_line_error(_tap("--nats", nats_server.url, "--subject", "qamoe.v1.>.x"), 2, "--subject")
    _one_line_error(_tap("--nats", nats_server.url, "--since", "yesterday"), 2, "--since")
    _one_line_error(_tap("--since", "1h"), 2, "add --nats")


@pytest.mark.slow
def test_live_with_unreachable_nats_fails_before_the_models_load(live_engines: Path) -> None:
    clip = GRID / "bbaf2n.mpg"
    if not clip.exists():
        pytest.skip(f"{clip} not found: the GRID clips live in ../shared/media/grid")
    script = Path(sys.executable).parent / "qamoe-live"
    t0 = time.monotonic()
    out = subprocess.run([str(script), "--engines-dir", str(live_engines), "--video-file", str(clip), "--fast",
                          "--endpoint", free_endpoint(), "--nats", f"nats://127.0.0.1:{free_port()}",
                          "--nats-timeout", "1"], capture_output=True, text=True, timeout=60, check=False)
    _one_line_error(out, 5, "no NATS server answered")
    assert time.monotonic() - t0 < 15
