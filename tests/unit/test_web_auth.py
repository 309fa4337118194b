"""qamoe-web's access token: format, generation, the remote-bind rule, reading it from a request target and
the comparison (edge.web.auth, edge.web.config)."""

from __future__ import annotations

import hmac

import pytest

from edge.web.auth import generate_token, resolve_token, token_in, token_matches
from edge.web.config import WebConfig, check_token, host_is_loopback
from edge.web.errors import WebConfigError

GOOD = "k" * 16


def test_generated_tokens_are_long_url_safe_and_different() -> None:
    tokens = {generate_token() for _ in range(20)}
    assert len(tokens) == 20
    for t in tokens:
        check_token(t)
        assert len(t) >= 32


@pytest.mark.parametrize(
    "bad",
    [
        "short",
        "k" * 15,
        "k" * 257,
        "has space" + "k" * 10,
        "k" * 16 + "&x=1",
        "k" * 16 + "\u00e9",
        "k" * 16 + "/",
    ],
)
def test_bad_tokens_are_refused_with_the_fix(bad: str) -> None:
    with pytest.raises(WebConfigError, match="16-256 characters"):
        check_token(bad)


def test_token_required_for_a_network_bind_only() -> None:
    token, generated = resolve_token(None, "127.0.0.1")
    assert generated and len(token) >= 32
    assert resolve_token(None, "::1")[1] and resolve_token(None, "localhost")[1]
    assert resolve_token(GOOD, "0.0.0.0") == (GOOD, False)
    for host in ("0.0.0.0", "192.168.1.7", "::"):
        with pytest.raises(WebConfigError, match="faces the network: pass an access token"):
            resolve_token(None, host)
    with pytest.raises(WebConfigError):
        resolve_token("", "0.0.0.0")  # an empty --token is no token


def test_loopback_hosts() -> None:
    assert all(host_is_loopback(h) for h in ("127.0.0.1", "127.3.4.5", "::1", "localhost"))
    assert not any(host_is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.1", "example.org", ""))


@pytest.mark.parametrize(
    ("target", "token"),
    [
        ("/?token=abc", "abc"),
        ("/ws?x=1&token=abc", "abc"),
        ("/", None),
        ("/?token=", ""),
        ("/?token=a&token=b", None),
        ("/?tok=abc", None),
        ("/?token=a%20b", "a b"),
    ],
)
def test_token_in_request_target(target: str, token: str | None) -> None:
    assert token_in(target) == token


def test_token_matches_exactly_and_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("edge.web.auth.hmac.compare_digest", spy)
    assert token_matches(GOOD, GOOD)
    assert not token_matches(GOOD + "x", GOOD)
    assert not token_matches(GOOD[:-1], GOOD)
    assert not token_matches("", GOOD)
    assert not token_matches(None, GOOD)
    assert not token_matches("\udcff" * 16, GOOD)  # a lone surrogate from a hostile URL: no crash
    assert len(calls) == 6  # every comparison, a missing token included, went through compare_digest


def test_web_config_validates() -> None:
    assert WebConfig(token=GOOD).is_loopback
    assert not WebConfig(token=GOOD, host="0.0.0.0").is_loopback
    with pytest.raises(WebConfigError, match="not an IP address"):
        WebConfig(token=GOOD, host="my host")
    with pytest.raises(WebConfigError, match="--port 70000"):
        WebConfig(token=GOOD, port=70000)
    with pytest.raises(WebConfigError, match="max_viewers=0"):
        WebConfig(token=GOOD, max_viewers=0)
    with pytest.raises(WebConfigError):
        WebConfig(token="short")
