"""Many nodes into NATS JetStream: `qamoe-bridge`, `qamoe-live --nats`, `qamoe-tap --nats` (docs/FLEET.md).

    from edge.fleet import BridgeConfig, BridgeThread, NatsConfig
    stats = BridgeThread(BridgeConfig(endpoints=("tcp://127.0.0.1:5556",), site="clinic-a",
                                      nats=NatsConfig(url="nats://nats.local:4222"))).start().stop()

Subjects `qamoe.v1.<topic>.<site>.<source>` (edge.fleet.subjects); one stream, `QAMOE` by default.
"""

from edge.fleet.bridge import Bridge, BridgeStats
from edge.fleet.config import BridgeConfig, NatsConfig, StreamSettings
from edge.fleet.errors import (
    FleetConfigError,
    NatsAuthError,
    NatsUnavailableError,
    StreamConflictError,
    SubjectTokenError,
)
from edge.fleet.runner import BridgeThread

__all__ = [
    "Bridge",
    "BridgeConfig",
    "BridgeStats",
    "BridgeThread",
    "FleetConfigError",
    "NatsAuthError",
    "NatsConfig",
    "NatsUnavailableError",
    "StreamConflictError",
    "StreamSettings",
    "SubjectTokenError",
]
