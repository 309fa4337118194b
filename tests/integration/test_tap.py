"""`qamoe-tap` as a user runs it: a subprocess subscribing to a real publisher on loopback."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from edge.publish import Publisher, PublisherConfig, validate
from edge.publish.examples import example_health, example_sentiment, example_transcript

ANSI = "\x1b[2J\x1b[31mred"
TAP = [sys.executable, "-m", "edge.cli.tap"]
# qamoe-tap as a terminal starts it: a child of a shell without job control (CI in the background, nohup) inherits
# SIGINT *ignored*, and the tap rightly keeps ignoring it, as POSIX background jobs do; Ctrl-C needs Python's default
TAP_IN_A_TERMINAL = [
    sys.executable, "-c",
    (
        "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "runpy.run_module('edge.cli.tap', run_name='__main__', alter_sys=True)"
    ),
]


@pytest.fixture
def live_endpoint() -> Iterator[str]:
    """A publisher streaming all three topics (a transcript with an ANSI escape in it) until the test ends."""
    stop = threading.Event()
    with Publisher(PublisherConfig(endpoint="tcp://127.0.0.1:0")) as pub:

        def stream() -> None:
            while not stop.is_set():
                for message in (example_sentiment(transcript=ANSI), example_transcript(), example_health()):
                    pub.publish(message)
                time.sleep(0.03)

        worker = threading.Thread(target=stream, daemon=True)
        worker.start()
        yield pub.endpoint
        stop.set()
        worker.join(5)


def test_tap_prints_n_messages_escaped_and_exits_0(live_endpoint: str) -> None:
    run = subprocess.run(
        [*TAP, "--endpoint", live_endpoint, "--count", "6", "--timeout", "20"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 6
    assert "\x1b" not in run.stdout
    sentiment = [line for line in lines if " sentiment " in line]
    assert sentiment and all("\\x1b[2J\\x1b[31mred" in line and "+1.20" in line for line in sentiment)


def test_tap_json_prints_raw_validating_json_lines(live_endpoint: str) -> None:
    run = subprocess.run(
        [
            *TAP,
            "--endpoint",
            live_endpoint,
            "--topics",
            "sentiment",
            "--json",
            "--count",
            "2",
            "--timeout",
            "20",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "\x1b" not in run.stdout
    payloads = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(payloads) == 2
    for payload in payloads:
        validate("qamoe.v1.sentiment", payload)
        assert payload["transcript"] == ANSI  # raw JSON keeps the data; the escape is inert as \u001b


def test_tap_ctrl_c_exits_0(live_endpoint: str) -> None:
    proc = subprocess.Popen(
        [*TAP_IN_A_TERMINAL, "--endpoint", live_endpoint],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline()  # it is in its receive loop
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_tap_timeout_exits_1_with_one_line() -> None:
    with Publisher(PublisherConfig(endpoint="tcp://127.0.0.1:0")) as silent:
        run = subprocess.run(
            [*TAP, "--endpoint", silent.endpoint, "--timeout", "0.5"],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert run.returncode == 1
    assert run.stdout == "" and len(run.stderr.strip().splitlines()) == 1
    assert "no message from" in run.stderr and "--endpoint" in run.stderr


def test_tap_bad_arguments_exit_2_with_the_fix() -> None:
    run = subprocess.run(
        [*TAP, "--topics", "gossip", "--timeout", "1"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2 and "unknown topic 'gossip'" in run.stderr
    assert "Traceback" not in run.stderr


def test_edge_clis_import_neither_torch_nor_qamoe() -> None:
    code = "import sys, edge.cli.tap, edge.cli.keys, edge.publish; print(sorted({'torch', 'qamoe'} & set(sys.modules)))"
    run = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_console_scripts_point_at_the_cli_mains() -> None:
    from importlib.metadata import entry_points

    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert scripts.get("qamoe-tap") == "edge.cli.tap:main"
    assert scripts.get("qamoe-keys") == "edge.cli.keys:main"
