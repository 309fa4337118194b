"""Typed errors of the web view (`qamoe-web`). Each message names the fix; each class carries its exit code
through its category (edge/errors.py)."""

from __future__ import annotations

from edge.errors import PublishFault, UsageError
from edge.publish.errors import MessageError


class WebConfigError(UsageError, ValueError):
    """A `qamoe-web` flag or `WebConfig` value that cannot work: a bad host or port, a token that is missing
    (for a bind that faces the network), too short or not URL-safe (exit 2)."""


class WebBindError(PublishFault):
    """The page server's address cannot be bound: the port is taken, the address is not on this machine, or
    the port needs privileges (exit 5, as for the publisher's port)."""


class ViewError(MessageError):
    """A message from the stream that the page cannot show (a field missing or of the wrong type); it is
    skipped and counted, never shown half-read."""
