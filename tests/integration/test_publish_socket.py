"""The publisher against real ZeroMQ SUB sockets, loopback only, on ports the OS picks (tests may run in parallel).

Slow joiner: a SUB socket receives nothing published before its subscription reaches the publisher, so tests
wait for it with `Publisher.wait_for_subscribers` instead of sleeping a guessed time."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import defaultdict

import pytest
import zmq

from edge.publish import (
    TOPIC_HEALTH,
    TOPIC_SENTIMENT,
    TOPIC_TRANSCRIPT,
    TOPICS,
    BindPolicyError,
    PortInUseError,
    PublishConfigError,
    Publisher,
    PublisherConfig,
    PublishError,
    Subscriber,
    SubscriberConfig,
    exposure_warning,
    validate,
)
from edge.publish.examples import example_health, example_sentiment, example_transcript
from edge.publish.subscriber import decode

ANY_PORT = "tcp://127.0.0.1:0"


def drain(sub: Subscriber, idle_s: float = 0.5) -> list:
    out = []
    while (msg := sub.receive(idle_s)) is not None:
        out.append(msg)
    return out


def test_every_message_validates_and_sequences_are_gap_free_per_topic() -> None:
    # send_hwm raised so a descheduled I/O thread on a loaded CI box cannot cause drops in this burst;
    # drops at the default HWM are the subject of the slow-subscriber test.
    with (
        Publisher(PublisherConfig(endpoint=ANY_PORT, send_hwm=1000)) as pub,
        Subscriber(SubscriberConfig(endpoint=pub.endpoint)) as sub,
    ):
        assert pub.wait_for_subscribers(1, timeout_s=5)
        made = {
            TOPIC_SENTIMENT: example_sentiment,
            TOPIC_TRANSCRIPT: example_transcript,
            TOPIC_HEALTH: example_health,
        }
        for i in range(60):
            seq = pub.publish(made[(TOPIC_SENTIMENT, TOPIC_TRANSCRIPT, TOPIC_HEALTH)[i % 3]]())
            assert seq == i // 3
        received = drain(sub)
        stats = pub.stats()
    seqs = defaultdict(list)
    for msg in received:
        validate(msg.topic, msg.payload)
        assert msg.payload["topic"] == msg.topic
        seqs[msg.topic].append(msg.payload["seq"])
    assert dict(seqs) == {t: list(range(20)) for t in made}
    never = {t: 0 for t in TOPICS if t not in made}  # topics not sent here (the frame topic: --share-frames only)
    assert stats.published == {**never, **{t: 20 for t in made}} and sum(stats.dropped.values()) == 0


def test_slow_subscriber_never_blocks_the_publisher_and_overflows_are_counted() -> None:
    n = 10_000
    # 10k messages of ~3 kB outgrow every buffer between the sockets (HWMs, kernel socket buffers). Heartbeats
    # off, so the stalled subscriber stays connected for the whole burst.
    message = example_sentiment(transcript="la " * 900)
    config = PublisherConfig(endpoint=ANY_PORT, validate_messages=False, heartbeat_ivl_ms=0)
    with Publisher(config) as pub, Subscriber(SubscriberConfig(endpoint=pub.endpoint, receive_hwm=8)) as slow:
        assert pub.wait_for_subscribers(1, timeout_s=5)
        results: list = []
        burst = threading.Thread(
            target=lambda: results.extend(pub.publish(message) for _ in range(n)), daemon=True
        )
        burst.start()
        burst.join(timeout=120)
        assert not burst.is_alive(), "publish() blocked on a subscriber that never reads"
        stats = pub.stats()
        assert results == list(range(n))  # every message uses up its number: a gap means a loss
        assert stats.published[TOPIC_SENTIMENT] == n and stats.dropped[TOPIC_SENTIMENT] > 0
        seen = [m.payload["seq"] for m in drain(slow)]
    # once it reads: what it got, in order; what it missed is exactly the gaps
    assert seen == sorted(set(seen)) and seen[0] == 0 and 0 < len(seen) < n


def test_a_subscriber_that_never_reads_costs_the_others_nothing() -> None:
    message = example_sentiment(transcript="la " * 900)
    # heartbeats off: the stalled subscriber stays connected (and full) for the whole test
    config = PublisherConfig(endpoint=ANY_PORT, validate_messages=False, heartbeat_ivl_ms=0)
    with (
        Publisher(config) as pub,
        Subscriber(SubscriberConfig(endpoint=pub.endpoint, receive_hwm=8)),
        Subscriber(SubscriberConfig(endpoint=pub.endpoint)) as reader,
    ):
        assert pub.wait_for_subscribers(2, timeout_s=5)
        got: list[int] = []
        deadline = time.monotonic() + 60
        # in step with the reader (a live stream is a few messages a second, the reader always keeps up): publish
        # until the stalled one has overflowed (its kernel buffers first) and then 200 more
        overflowed_at = None
        while (overflowed_at is None or len(got) < overflowed_at + 200) and time.monotonic() < deadline:
            seq = pub.publish(message)
            msg = reader.receive(2.0)
            assert msg is not None and msg.payload["seq"] == seq, f"the reader lost message {seq} to the stalled one"
            got.append(seq)
            if overflowed_at is None and pub.stats().dropped[TOPIC_SENTIMENT]:
                overflowed_at = len(got)
        assert overflowed_at is not None, "the stalled subscriber never overflowed"


def test_a_burst_reaches_a_subscriber_that_keeps_up_without_loss() -> None:
    # The windows that fell due while the process was held up (SIGSTOP, a long GC) go out at once: more than the
    # default send_hwm, faster than ZeroMQ's I/O thread moves them to the kernel. A subscriber that reads
    # continuously is keeping up and must get all of them (the socket thread's drain budget).
    n = 4 * PublisherConfig().send_hwm
    with (
        Publisher(PublisherConfig(endpoint=ANY_PORT, validate_messages=False)) as pub,
        Subscriber(SubscriberConfig(endpoint=pub.endpoint)) as reader,
    ):
        assert pub.wait_for_subscribers(1, timeout_s=5)
        for _ in range(3):
            for _ in range(n):
                pub.publish(example_sentiment(transcript="la " * 300))
            assert pub.flush(5)
        got = [m.payload["seq"] for m in drain(reader)]
        stats = pub.stats()
    assert got == list(range(3 * n)) and stats.dropped[TOPIC_SENTIMENT] == 0, (got, stats.dropped)


def test_late_subscriber_gets_fresh_data_at_once() -> None:
    stop = threading.Event()
    with Publisher(PublisherConfig(endpoint=ANY_PORT)) as pub:

        def beat() -> None:
            while not stop.is_set():
                pub.publish(example_health())
                time.sleep(0.01)

        worker = threading.Thread(target=beat, daemon=True)
        worker.start()
        try:
            while pub.stats().published[TOPIC_HEALTH] < 20:
                time.sleep(0.01)
            published_before = pub.stats().published[TOPIC_HEALTH]
            assert pub.flush(5)  # handed to ZeroMQ: what a subscriber connecting now must not get
            with Subscriber(SubscriberConfig(endpoint=pub.endpoint)) as late:
                first = late.receive(5)
        finally:
            stop.set()
            worker.join(5)
    assert first is not None, "a late subscriber received nothing within 5 s"
    assert first.payload["seq"] >= published_before  # live data, no backlog of old messages


def test_port_in_use_raises_a_one_line_error_naming_the_port_and_the_fix() -> None:
    with Publisher(PublisherConfig(endpoint=ANY_PORT)) as first:
        port = first.endpoint.rsplit(":", 1)[1]
        with pytest.raises(PortInUseError) as info:
            Publisher(PublisherConfig(endpoint=f"tcp://127.0.0.1:{port}"))
    text = str(info.value)
    assert f"port {port}" in text and "--endpoint" in text and "\n" not in text


@pytest.mark.parametrize(
    "endpoint",
    [
        "tcp://0.0.0.0:5556",
        "tcp://*:5556",
        "tcp://192.168.1.20:5556",
        "tcp://eth0:5556",
        "tcp://[::]:5556",
        "tcp://example.com:5556",
    ],
)
def test_non_loopback_bind_is_refused_without_allow_remote(endpoint: str) -> None:
    with pytest.raises(BindPolicyError, match="allow_remote=True"):
        PublisherConfig(endpoint=endpoint)
    assert exposure_warning(PublisherConfig(endpoint=endpoint, allow_remote=True)) is not None


@pytest.mark.parametrize(
    "endpoint",
    [
        "tcp://127.0.0.1:5556",
        "tcp://127.0.0.2:1",
        "tcp://localhost:5556",
        "tcp://[::1]:5556",
        "ipc:///tmp/qamoe.sock",
        "inproc://qamoe",
    ],
)
def test_loopback_and_local_transports_are_allowed_silently(endpoint: str) -> None:
    assert exposure_warning(PublisherConfig(endpoint=endpoint)) is None


def test_exposure_warning_says_anyone_can_read_and_goes_away_with_curve(tmp_path) -> None:
    # Tests never bind a non-loopback address, so the decision is tested without a socket; Publisher logs it.
    open_config = PublisherConfig(endpoint="tcp://0.0.0.0:5556", allow_remote=True)
    assert "anyone on the network can read" in exposure_warning(open_config)
    curve_config = PublisherConfig(
        endpoint="tcp://0.0.0.0:5556",
        allow_remote=True,
        curve_server_secret_key_file=tmp_path / "s.key_secret",
        curve_allowed_clients_dir=tmp_path,
    )
    assert exposure_warning(curve_config) is None


def test_publisher_logs_nothing_alarming_on_loopback(caplog: pytest.LogCaptureFixture) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="edge.publish"),
        Publisher(PublisherConfig(endpoint=ANY_PORT)),
    ):
        pass
    assert not caplog.records


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"endpoint": "127.0.0.1:5556"}, "tcp://127.0.0.1:5556"),
        ({"endpoint": "udp://127.0.0.1:5556"}, "not supported"),
        ({"endpoint": "tcp://127.0.0.1:99999"}, "port 0-65535"),
        ({"send_hwm": 0}, "send_hwm"),
        ({"linger_ms": -1}, "linger_ms"),
        ({"curve_allowed_clients_dir": "/tmp"}, "both"),
    ],
)
def test_config_rejects_bad_values_with_the_fix(kwargs: dict, match: str) -> None:
    with pytest.raises(PublishConfigError, match=match):
        PublisherConfig(**kwargs)


def test_closed_publisher_refuses_and_releases_its_port() -> None:
    pub = Publisher(PublisherConfig(endpoint=ANY_PORT))
    endpoint = pub.endpoint
    pub.close()
    pub.close()  # idempotent
    with pytest.raises(PublishError, match="closed"):
        pub.publish(example_health())
    Publisher(PublisherConfig(endpoint=endpoint)).close()  # the port is free again


def test_subscriber_rejects_foreign_frames() -> None:
    from edge.publish import MessageError

    for frames in ([b"qamoe.v1.health"], [b"qamoe.v1.health", b"{not json"], [b"t", b"[1, 2]"]):
        with pytest.raises(MessageError):
            decode(frames)
    assert zmq.has("curve")


def test_a_subscriber_gives_up_a_stalled_handshake_and_connects_afresh() -> None:
    """A publisher's port whose door is shut (edge.publish.door) leaves a connection half-open, and its TCP
    retries back off to seconds; the subscriber drops a handshake that has not finished within
    handshake_ivl_ms and connects again. Here a listener accepts and never speaks ZMTP: a second connection
    must come within a few handshake intervals (ZeroMQ's default would wait 30 s)."""
    with pytest.raises(PublishConfigError, match="handshake_ivl_ms"):
        SubscriberConfig(handshake_ivl_ms=10)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.settimeout(5.0)
        endpoint = f"tcp://127.0.0.1:{listener.getsockname()[1]}"
        with Subscriber(SubscriberConfig(endpoint=endpoint, handshake_ivl_ms=300)):
            first, _ = listener.accept()
            t0 = time.monotonic()
            second, _ = listener.accept()  # socket.timeout (a failure) if it never comes back
            waited = time.monotonic() - t0
            first.close()
            second.close()
    assert 0.2 <= waited <= 2.0, waited
