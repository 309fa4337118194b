"""Typed errors of the NATS side (`qamoe-bridge`, `qamoe-live --nats`, `qamoe-tap --nats`); each names the fix.

Exit codes are their categories' (edge/errors.py): a value the user passed or a stream the user must reconcile
is a usage error (2); a NATS server that cannot be reached, refuses JetStream or fails mid-setup is a publish
fault (5), like a port that cannot be bound."""

from __future__ import annotations

from edge.errors import PublishFault, UsageError


class FleetConfigError(UsageError, ValueError):
    """A bridge / NATS option out of range or inconsistent (exit 2)."""


class SubjectTokenError(FleetConfigError):
    """A site, bridge id or source id that cannot be a NATS subject token (exit 2)."""


class NatsAuthError(UsageError):
    """The NATS server refused the credentials (user/password, token, creds file) or the TLS setup (exit 2)."""


class StreamConflictError(UsageError):
    """The JetStream stream exists with settings other than those asked for (exit 2); nothing was written."""


class NatsUnavailableError(PublishFault):
    """No NATS server answered at the URL within the timeout, or it has no JetStream (exit 5)."""
