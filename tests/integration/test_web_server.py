"""qamoe-web as a process, without a browser: a viewer that stops reading gets the newest state, not a queue;
bad arguments and an unbindable port end in one line and a documented exit code; signals stop it with 0."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from edge.cli.webrun import WebCommand, WebRun, web_executable
from edge.publish import (
    HealthStats,
    Publisher,
    PublisherConfig,
    PublishStats,
    health_message,
    transcript_message,
)
from edge.publish.recorder import free_endpoint
from edge.vocab import NS, Word

TOKEN = "test_token_" + "t" * 16
FLOOD = 2500
LONG = "x" * 4000  # 4 kB a transcript: 10 MB in all, far more than a viewer's socket buffers


def _health(pub: Publisher) -> None:
    pub.publish(
        health_message(
            HealthStats(source_id="s", uptime_s=1.0, fps={}, queues={}, devices={}, messages=PublishStats())
        )
    )


class StalledViewer:
    """A WebSocket client that stops reading after the handshake (its socket's receive window is small), then
    reads everything at once. The library's sans-I/O protocol does the framing."""

    def __init__(self, url: str) -> None:
        self.protocol = ClientProtocol(parse_uri(url), max_size=None)
        parts = urlsplit(url)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small window
        self.sock.connect((parts.hostname, parts.port))
        self.protocol.send_request(self.protocol.connect())
        self._flush()
        self.sock.settimeout(5)
        while self.protocol.state is State.CONNECTING:
            self.protocol.receive_data(self.sock.recv(65536))
        self.messages: list[dict] = []
        self._collect()

    def _flush(self) -> None:
        for data in self.protocol.data_to_send():
            if data:
                self.sock.sendall(data)

    def _collect(self) -> None:
        for event in self.protocol.events_received():
            if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                self.messages.append(json.loads(event.data))

    def read_all(self, quiet_s: float = 2.0) -> list[dict]:
        self.sock.settimeout(quiet_s)
        while True:
            try:
                data = self.sock.recv(1 << 20)
            except TimeoutError:
                break
            if not data:
                break
            self.protocol.receive_data(data)
            self._flush()  # pongs
            self._collect()
        self.sock.close()
        return self.messages


def _stalled_viewer(web: WebRun, pub: Publisher) -> list[dict]:
    slow = StalledViewer(web.base.replace("http://", "ws://") + f"ws?token={TOKEN}")
    for i in range(FLOOD):  # the viewer reads nothing meanwhile
        pub.publish(transcript_message(source_id="s", words=[Word(f"{i} {LONG}", i * NS, i * NS + 1)]))
    assert pub.flush(20)
    time.sleep(1.0)
    _health(pub)  # carries the server's counters
    time.sleep(0.5)
    return slow.read_all()


def _final_transcript(messages: list[dict]) -> list[int]:
    """The transcript seqs a page would show after these messages (snapshots replace, updates append)."""
    seqs: list[int] = []
    for m in messages:
        if m["kind"] == "snapshot":
            seqs = [t["seq"] for t in m["transcript"]]
        elif m["kind"] == "transcript":
            seqs.append(m["seq"])
    return seqs


def test_a_viewer_that_stops_reading_gets_the_newest_state() -> None:
    endpoint = free_endpoint()
    config = PublisherConfig(
        endpoint=endpoint, send_hwm=100_000, block_ms=5000
    )  # every message reaches the server
    with Publisher(config) as pub, WebRun(WebCommand(endpoint, token=TOKEN)) as web:
        pub.wait_for_subscribers(1, 10)
        got = _stalled_viewer(web, pub)
        assert web.stop() == 0
    assert got[0]["kind"] == "snapshot"
    assert _final_transcript(got)[-1] == FLOOD - 1  # it ends with the newest state
    assert any(m["kind"] == "snapshot" for m in got[1:]), "the stalled viewer was never sent the whole state"
    # It was not queued everything: what it got one by one is what the socket buffers (kernel, ~1-2.5 MB
    # on loopback) and its slot held when it stopped reading.
    assert len(got) < FLOOD * 2 / 3
    server = [m for m in got if "server" in m][-1]["server"]  # health updates and snapshots carry it
    assert server["dropped"] > FLOOD / 3 and server["resyncs"] >= 1 and server["viewers"] == 1
    assert server["stream_dropped"] == 0  # the server itself kept up with the stream


def _run(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*web_executable(), "--endpoint", free_endpoint(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (("--host", "my.host"), 2, "is not an IP address"),
        (("--host", "0.0.0.0"), 2, "faces the network: pass an access token"),
        (("--token", "short"), 2, "16-256 characters"),
        (("--port", "70000"), 2, "--port 70000"),
        (("--host", "192.0.2.1", "--token", TOKEN), 5, "is not on this machine"),
        (
            ("--curve-server-key", "/nonexistent/server.key", "--curve-client-keys", "/nonexistent"),
            2,
            "/nonexistent",
        ),
    ],
)
def test_bad_arguments_end_in_one_line(args: tuple[str, ...], code: int, says: str) -> None:
    out = _run(*args)
    assert out.returncode == code, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("qamoe-web: ") and says in lines[0], out.stderr
    assert "Traceback" not in out.stderr


def test_port_in_use_exits_5() -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        out = _run("--port", str(port))
    assert out.returncode == 5, out.stderr
    assert out.stderr.count("\n") == 1 and f"port {port} is already in use" in out.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_it_with_0_even_with_a_connection_held_open(sig: int) -> None:
    with WebRun(WebCommand(free_endpoint())) as web:
        host, port = web.base.split("//")[1].rstrip("/").split(":")
        with socket.create_connection((host, int(port))):  # a client that connects and says nothing
            time.sleep(0.2)
            t0 = time.monotonic()
            assert web.stop(sig) == 0
        assert time.monotonic() - t0 < 5
    assert "Traceback" not in web.stderr


def test_token_from_the_environment(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*web_executable(), "--endpoint", free_endpoint(), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"QAMOE_WEB_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"},
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    assert line.startswith("qamoe-web: open http://127.0.0.1:") and line.strip().endswith(
        f"?token={TOKEN}"
    ), err
    assert proc.returncode == 0
