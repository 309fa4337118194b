"""Typed errors of the publishing side (ZeroMQ socket, CURVE keys, message schema). Every message names the fix."""

from __future__ import annotations

from edge.errors import PublishFault, UsageError


class PublishError(PublishFault):
    """The publisher or a subscriber cannot be set up or cannot send/receive (exit 5)."""


class PublishConfigError(UsageError, ValueError):
    """A `PublisherConfig` / `SubscriberConfig` value is out of range or unsafe: a usage error (exit 2), so
    not a `PublishError` (`qamoe-tap` catches it as a ValueError)."""


class BindPolicyError(PublishConfigError):
    """A non-loopback bind address was asked for without `allow_remote=True`."""


class PortInUseError(PublishError):
    """The endpoint's TCP port is already bound by another process."""

    def __init__(self, endpoint: str, port: str) -> None:
        self.endpoint = endpoint
        self.port = port
        super().__init__(
            f"port {port} is already in use ({endpoint}): stop the process holding it (`ss -ltnp | grep :{port}`) "
            f"or choose another port, e.g. --endpoint tcp://127.0.0.1:{_suggest(port)}"
        )


class CurveKeyError(UsageError):
    """A CURVE key file or allow-list directory is missing, unreadable or malformed: a usage error (exit 2,
    the README's "CURVE key files included"), so not a `PublishError`: `qamoe-tap` catches it by name."""


class MessageError(PublishError, ValueError):
    """A message could not be built or encoded (a bug in the caller: a wrong type or an unknown topic)."""


class SchemaValidationError(MessageError):
    """A payload does not match its topic's JSON Schema."""


def _suggest(port: str) -> int:
    try:
        return int(port) + 1 if 0 < int(port) < 65535 else 5557
    except ValueError:
        return 5557
