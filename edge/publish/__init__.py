"""Publishing the live stream over ZeroMQ: topics `qamoe.v1.sentiment`, `qamoe.v1.transcript`, `qamoe.v1.health`
and, only when the node shares frames, `qamoe.v1.frame`.

    from edge.publish import Publisher, PublisherConfig, sentiment_message
    with Publisher(PublisherConfig()) as pub:
        pub.publish(sentiment_message(window, estimate, model, latency_ms=latency))

Payload fields, units and versioning: docs/messages.md; JSON Schemas: edge/publish/schemas/.
"""

from edge.publish.config import DEFAULT_ENDPOINT, Endpoint, PublisherConfig, exposure_warning, parse_endpoint
from edge.publish.errors import (
    BindPolicyError,
    CurveKeyError,
    MessageError,
    PortInUseError,
    PublishConfigError,
    PublishError,
    SchemaValidationError,
)
from edge.publish.escape import terminal_safe
from edge.publish.frame import FaceBox, Thumbnail, frame_message
from edge.publish.guard import SubscriberLimits
from edge.publish.messages import (
    DeviceStatus,
    Estimate,
    HealthStats,
    ModelInfo,
    PublishStats,
    QueueStats,
    WindowInfo,
    health_message,
    sentiment_message,
    transcript_message,
)
from edge.publish.publisher import Publisher
from edge.publish.schema import is_valid, load_schema, validate
from edge.publish.subscriber import Received, Subscriber, SubscriberConfig
from edge.publish.wire import (
    POLARITY_NEUTRAL_BAND,
    SCHEMA_VERSION,
    TOPIC_FRAME,
    TOPIC_HEALTH,
    TOPIC_PREFIX,
    TOPIC_SENTIMENT,
    TOPIC_TRANSCRIPT,
    TOPICS,
    Message,
    WallClock,
    polarity,
)
from edge.vocab import MODALITIES

__all__ = [
    "DEFAULT_ENDPOINT",
    "MODALITIES",
    "POLARITY_NEUTRAL_BAND",
    "SCHEMA_VERSION",
    "TOPICS",
    "TOPIC_FRAME",
    "TOPIC_HEALTH",
    "TOPIC_PREFIX",
    "TOPIC_SENTIMENT",
    "TOPIC_TRANSCRIPT",
    "BindPolicyError",
    "CurveKeyError",
    "DeviceStatus",
    "Endpoint",
    "Estimate",
    "FaceBox",
    "HealthStats",
    "Message",
    "MessageError",
    "ModelInfo",
    "PortInUseError",
    "PublishConfigError",
    "PublishError",
    "PublishStats",
    "Publisher",
    "PublisherConfig",
    "QueueStats",
    "Received",
    "SchemaValidationError",
    "Subscriber",
    "SubscriberConfig",
    "SubscriberLimits",
    "Thumbnail",
    "WallClock",
    "WindowInfo",
    "exposure_warning",
    "frame_message",
    "health_message",
    "is_valid",
    "load_schema",
    "parse_endpoint",
    "polarity",
    "sentiment_message",
    "terminal_safe",
    "transcript_message",
    "validate",
]
