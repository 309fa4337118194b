"""Helpers of the fleet tests: a synthetic node (a real `edge.publish.Publisher` sending real-schema sentiment
messages at a set rate), `qamoe-bridge` as a process, and a durable JetStream consumer that reads a stream to
its end (acking each message, as a real consumer would)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from edge.publish import Publisher, PublisherConfig
from edge.publish.examples import example_sentiment
from edge.publish.recorder import free_endpoint
from edge.publish.wire import Message


class SyntheticNode:
    """Publishes sentiment messages with `source_id` at `rate_hz` on a free endpoint until `stop()`;
    `published` is how many (seq 0 .. published-1)."""

    def __init__(self, source_id: str, rate_hz: float, endpoint: str | None = None) -> None:
        self.endpoint = endpoint or free_endpoint()
        self.source_id = source_id
        self.rate_hz = rate_hz
        self.published = 0
        self.publisher = Publisher(PublisherConfig(endpoint=self.endpoint, linger_ms=1000))
        m = example_sentiment()
        self._message = Message(m.topic, {**m.body, "source_id": source_id})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"node-{source_id}", daemon=True)

    def start(self) -> SyntheticNode:
        self._thread.start()
        return self

    def _run(self) -> None:
        period = 1.0 / self.rate_hz
        next_at = time.monotonic()
        while not self._stop.is_set():
            self.publisher.publish(self._message)
            self.published += 1
            next_at += period
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(5)
        self.publisher.flush(5)
        return self.published

    def close(self) -> None:
        self.stop()
        self.publisher.close()


def bridge_argv(*args: str) -> list[str]:
    script = Path(sys.executable).parent / "qamoe-bridge"
    return [str(script), *args] if script.is_file() else [sys.executable, "-m", "edge.cli.bridge", *args]


def start_bridge(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(bridge_argv(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)


def one_line_error(out: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    """`out` failed with exit `code` and one line on stderr (INFO log lines aside) holding each of `words`."""
    lines = [line for line in out.stderr.splitlines() if line.strip() and " INFO " not in line]
    assert out.returncode == code, out.stderr
    assert len(lines) == 1, out.stderr
    assert "Traceback" not in out.stderr
    for word in words:
        assert word in lines[0], lines[0]


def run_bridge(*args: str, timeout_s: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(bridge_argv(*args), capture_output=True, text=True, timeout=timeout_s,
                          stdin=subprocess.DEVNULL, check=False)


async def _drain(url: str, stream: str, subject: str, durable: str, idle_s: float,
                 limit_s: float) -> list[tuple[str, dict]]:
    nc = await nats.connect(url, connect_timeout=3, allow_reconnect=False)
    try:
        js = nc.jetstream()
        config = ConsumerConfig(durable_name=durable, ack_policy=AckPolicy.EXPLICIT,
                                deliver_policy=DeliverPolicy.ALL, ack_wait=30)
        sub = await js.pull_subscribe(subject, durable=durable, stream=stream, config=config)
        got: list[tuple[str, dict]] = []
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            try:
                batch = await sub.fetch(500, timeout=idle_s)
            except TimeoutError:  # nats.errors.TimeoutError is one; fetch() also raises the plain one
                break  # (its own deadline check, seen under load)
            for msg in batch:
                got.append((msg.subject, json.loads(msg.data)))
                await msg.ack()
        return got
    finally:
        await nc.close()


def drain_durable(url: str, durable: str, *, subject: str = "qamoe.v1.>", stream: str = "QAMOE",
                  idle_s: float = 1.5, limit_s: float = 60) -> list[tuple[str, dict]]:
    """Everything the durable consumer `durable` has not acked yet (all of the stream the first time), acked,
    until nothing new arrives for `idle_s`."""
    return asyncio.run(_drain(url, stream, subject, durable, idle_s, limit_s))


def seqs_of(messages: list[tuple[str, dict]], subject: str) -> list[int]:
    return [body["seq"] for subj, body in messages if subj == subject]
