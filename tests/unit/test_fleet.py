"""The thread-free parts of the NATS bridge (issue 17): subject tokens, de-duplication ids, seq gap counting, the
bounded buffer's drop-oldest policy, configuration and option parsing. No broker needed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from edge.cli.nats_args import OptionError, parse_duration, parse_size
from edge.errors import EXIT_USAGE
from edge.fleet.config import BridgeConfig, NatsConfig, StreamSettings, check_nats_url
from edge.fleet.consume import check_subject_filter, parse_since
from edge.fleet.errors import FleetConfigError, SubjectTokenError
from edge.fleet.natsconn import stream_config, stream_conflicts
from edge.fleet.subjects import check_token, msg_id, sanitise_source, subject_for, topic_token
from edge.fleet.tracking import BoundedBuffer, SeqTracker

# ------------------------------------------------------------------------------------------------- subjects


@pytest.mark.parametrize("bad", ["", "a.b", "a b", "*", ">", "room>", "x" * 65, "tab\t", "ü"])
def test_user_tokens_are_refused_unless_clean(bad: str) -> None:
    with pytest.raises(SubjectTokenError, match="cannot be a NATS subject token") as err:
        check_token(bad, "--site")
    assert err.value.exit_code == EXIT_USAGE
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("good", ["clinic-a", "room_3", "R2D2", "x" * 64])
def test_clean_tokens_pass(good: str) -> None:
    assert check_token(good, "--site") == good


def test_clean_source_ids_are_kept_as_they_are() -> None:
    assert sanitise_source("cam0") == "cam0"
    assert sanitise_source("room-3_b") == "room-3_b"


@pytest.mark.parametrize("raw", ["/data/room 1.mp4", "a.b", "a b", "a*b", "a>b", "cam.*.>", "ü", "x" * 300])
def test_unsafe_source_ids_become_one_clean_token(raw: str) -> None:
    token = sanitise_source(raw)
    assert token is not None
    check_token(token, "source")  # one clean token: no dots, spaces or wildcards, at most 64 characters
    assert token != raw


def test_sources_that_sanitise_alike_stay_apart() -> None:
    names = ["a.b", "a b", "a*b", "a>b", "a_b"]
    tokens = [sanitise_source(n) for n in names]
    assert len(set(tokens)) == len(names), tokens
    assert sanitise_source("a.b") == sanitise_source("a.b")  # stable: the same source, the same subject


@pytest.mark.parametrize("empty", ["", None, 7, ["cam"]])
def test_an_empty_or_non_string_source_cannot_be_bridged(empty: object) -> None:
    assert sanitise_source(empty) is None


def test_subject_scheme() -> None:
    assert topic_token("qamoe.v1.sentiment") == "sentiment"
    assert topic_token("qamoe.v1.a.b") is None and topic_token("other.v1.x") is None
    assert subject_for("sentiment", "clinic-a", "room_3") == "qamoe.v1.sentiment.clinic-a.room_3"


def test_msg_id_is_the_same_for_the_same_message_and_differs_otherwise() -> None:
    one = msg_id("lab", "cam0", "sentiment", 42, 5_000_000)
    assert one == msg_id("lab", "cam0", "sentiment", 42, 5_000_000)  # a second bridge computes the same id
    others = {msg_id("lab", "cam0", "sentiment", 43, 5_000_000), msg_id("lab", "cam1", "sentiment", 42, 5_000_000),
              msg_id("lab", "cam0", "health", 42, 5_000_000), msg_id("lab2", "cam0", "sentiment", 42, 5_000_000),
              # a node that restarted: seq 42 again, sent later -> a new message, not a duplicate
              msg_id("lab", "cam0", "sentiment", 42, 9_000_000)}
    assert one not in others and len(others) == 5

# --------------------------------------------------------------------------------------------- seq gaps


def test_gap_counting() -> None:
    t = SeqTracker()
    key = ("cam0", "sentiment")
    assert t.observe(key, 5).lost == 0  # the first seen starts the count: what came before is not ours
    assert t.observe(key, 6).lost == 0
    assert t.observe(key, 9).lost == 2  # 7 and 8 never arrived
    assert t.observe(key, 10).lost == 0
    assert t.lost == 2 and t.restarts == 0


def test_gaps_are_counted_per_source_and_topic() -> None:
    t = SeqTracker()
    for key in [("a", "sentiment"), ("a", "health"), ("b", "sentiment")]:
        t.observe(key, 0)
    t.observe(("a", "sentiment"), 1)
    t.observe(("a", "health"), 3)
    t.observe(("b", "sentiment"), 1)
    assert t.lost == 2


def test_a_restarted_publisher_is_not_a_loss() -> None:
    t = SeqTracker()
    key = ("cam0", "sentiment")
    for s in (0, 1, 2, 3):
        t.observe(key, s)
    verdict = t.observe(key, 0)
    assert verdict.restart and verdict.lost == 0
    assert t.observe(key, 1).lost == 0
    assert t.lost == 0 and t.restarts == 1


def test_a_repeated_seq_is_a_duplicate() -> None:
    t = SeqTracker()
    key = ("cam0", "sentiment")
    t.observe(key, 4)
    assert t.observe(key, 4).duplicate
    assert t.duplicates == 1 and t.lost == 0


def test_resume_counts_what_passed_between_runs() -> None:
    t = SeqTracker()
    t.resume(("cam0", "sentiment"), 10)
    assert t.observe(("cam0", "sentiment"), 14).lost == 3

# ------------------------------------------------------------------------------------------------ buffer


def test_buffer_keeps_order_and_drops_the_oldest_when_full() -> None:
    b: BoundedBuffer[int] = BoundedBuffer(3)
    assert [b.push(i) for i in range(5)] == [False, False, False, True, True]
    assert b.dropped == 2 and len(b) == 3
    assert b.take(10) == [2, 3, 4]
    assert b.take(1) == [] and b.policy == "drop-oldest"


def test_buffer_push_front_returns_unsent_items_ahead_of_newer_ones() -> None:
    b: BoundedBuffer[int] = BoundedBuffer(5)
    for i in range(5):
        b.push(i)
    taken = b.take(3)  # 0 1 2 in flight
    b.push(5)
    b.push(6)
    assert b.push_front(taken) == 2  # 7 items for 5 places: the two oldest (0, 1) go
    assert b.dropped == 2
    assert b.take(10) == [2, 3, 4, 5, 6]


def test_buffer_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        BoundedBuffer(0)

# ------------------------------------------------------------------------------------------------ config


@pytest.mark.parametrize("url", ["http://x:4222", "nats://", "nats://h:99999", "", "nats://h:0", "h:4222"])
def test_bad_nats_urls_are_refused(url: str) -> None:
    with pytest.raises(FleetConfigError):
        check_nats_url(url)


def test_nats_urls_parse() -> None:
    assert check_nats_url("nats://a:4222, tls://b:4443") == ("nats://a:4222", "tls://b:4443")
    assert NatsConfig(url="tls://b:4443").uses_tls and not NatsConfig().uses_tls


def test_bridge_config_checks(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SubjectTokenError):
        BridgeConfig(source_id="room.1")
    with pytest.raises(FleetConfigError, match="one --endpoint"):
        BridgeConfig(endpoints=("tcp://127.0.0.1:1", "tcp://127.0.0.1:2"), source_id="r1")
    with pytest.raises(FleetConfigError, match="--buffer"):
        BridgeConfig(buffer_capacity=0)
    with pytest.raises(FleetConfigError, match="no such file"):
        NatsConfig(creds_file=tmp_path / "missing.creds")
    with pytest.raises(FleetConfigError, match="go together"):
        (tmp_path / "c.pem").write_text("x")
        NatsConfig(tls_cert=tmp_path / "c.pem")
    with pytest.raises(FleetConfigError, match="--duplicate-window"):
        StreamSettings(max_age_s=60, duplicate_window_s=120)


def test_durations_and_sizes() -> None:
    assert parse_duration("90", "--x") == 90 and parse_duration("2m", "--x") == 120
    assert parse_duration("7d", "--x") == 7 * 86400
    assert parse_size("1G", "--x") == 1 << 30 and parse_size("512MiB", "--x") == 512 << 20
    assert parse_size("2048", "--x") == 2048
    for bad in ("-1", "1y", "x"):
        with pytest.raises(OptionError):
            parse_duration(bad, "--x")
    with pytest.raises(OptionError):
        parse_size("1.5G", "--x")


def test_stream_conflicts_name_each_difference() -> None:
    want = StreamSettings(max_age_s=3600, max_bytes=1 << 20, duplicate_window_s=60)
    assert stream_conflicts(stream_config(want), want) == []
    other = stream_config(StreamSettings(max_age_s=7200, max_bytes=1 << 21, duplicate_window_s=60))
    found = " | ".join(stream_conflicts(other, want))
    assert "max_age 7200 s instead of 3600 s" in found and "max_bytes 2097152 instead of 1048576" in found

# ------------------------------------------------------------------------------------------- consuming side


def test_subject_filters() -> None:
    for ok in ("qamoe.v1.>", "qamoe.v1.sentiment.>", "qamoe.v1.*.clinic-a.*"):
        assert check_subject_filter(ok) == ok
    for bad in ("qamoe.v1.>.x", "qamoe..v1", "qamoe v1", ""):
        with pytest.raises(FleetConfigError):
            check_subject_filter(bad)


def test_since() -> None:
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert parse_since(None) is None
    assert parse_since("15m", now) == now - timedelta(minutes=15)
    assert parse_since("2026-01-01T09:00:00Z") == datetime(2026, 1, 1, 9, tzinfo=UTC)
    assert parse_since("2026-01-01T09:00:00") == datetime(2026, 1, 1, 9, tzinfo=UTC)
    assert parse_since("all").year == 1
    with pytest.raises(FleetConfigError):
        parse_since("yesterday")
