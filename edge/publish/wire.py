"""The v1 wire vocabulary: topics, the message value, wall-clock conversion and the sanitising of values.

The wire format is its own versioned contract, so the modality names are spelt out here rather than imported from
the model's I/O contract: a renamed ONNX tensor must not silently rename a published field.
"""

from __future__ import annotations

import json
import math
import operator
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from edge.publish.errors import MessageError
from edge.vocab import NS

SCHEMA_VERSION = "qamoe.v1"
TOPIC_PREFIX = "qamoe.v1."
TOPIC_SENTIMENT = "qamoe.v1.sentiment"
TOPIC_TRANSCRIPT = "qamoe.v1.transcript"
TOPIC_HEALTH = "qamoe.v1.health"
TOPIC_FRAME = "qamoe.v1.frame"  # camera thumbnails: published only with `qamoe-live --share-frames` (privacy)
TOPICS = (TOPIC_SENTIMENT, TOPIC_TRANSCRIPT, TOPIC_HEALTH, TOPIC_FRAME)  # additive: new topics go at the end
POLARITIES = ("negative", "neutral", "positive")
VALENCE_RANGE = 3.0  # the model's valence is 3 tanh(.) in [-3, 3] (CMU-MOSI/MOSEI scale)
# |valence| < 0.5 is neutral: the 7-class MOSI/MOSEI convention rounds it to 0.
POLARITY_NEUTRAL_BAND = 0.5
MAX_TEXT_CHARS = 4096  # transcripts; longer text is cut and ends with "…"
MAX_NAME_CHARS = 256  # ids, names, reasons
_RANGE_TOLERANCE = 1e-6  # float32 softmax/sigmoid outputs may overshoot [0, 1] by an ulp


@dataclass(frozen=True)
class Message:
    """A topic and its body, ready for `Publisher.publish`, which adds the envelope (version, topic, seq, sent).

    Build it with `sentiment_message`, `transcript_message`, `health_message` or `frame_message`; treat `body`
    as read-only.
    """

    topic: str
    body: dict[str, Any]

    def __post_init__(self) -> None:
        if self.topic not in TOPICS:
            raise MessageError(f"unknown topic {self.topic!r}: use one of {', '.join(TOPICS)}")


@dataclass(frozen=True)
class WallClock:
    """Converts monotonic nanoseconds (the pipeline's clock) to wall-clock time, for display only.

    offset_ns = wall - monotonic at the moment the clock was read; `WallClock.now()` re-reads it so that NTP
    corrections show up in the next message.
    """

    offset_ns: int

    @classmethod
    def now(cls) -> WallClock:
        return cls(time.time_ns() - time.monotonic_ns())

    def timepoint(self, mono_ns: int) -> dict[str, Any]:
        """{"mono_ns": int, "epoch_s": float, "iso": "2026-01-02T03:04:05.678Z"} for a monotonic stamp."""
        try:
            mono_ns = operator.index(mono_ns)  # ints and numpy integers; a float here is a units bug
        except TypeError:
            raise MessageError(
                f"a monotonic time must be an int of nanoseconds, got {mono_ns!r:.80}"
            ) from None
        if isinstance(mono_ns, bool):
            raise MessageError("a monotonic time must be an int of nanoseconds, got a bool")
        wall_ns = mono_ns + self.offset_ns
        stamp = datetime.fromtimestamp(wall_ns // 1_000_000 / 1000, tz=UTC)
        iso = stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return {"mono_ns": mono_ns, "epoch_s": wall_ns / NS, "iso": iso}


def polarity(valence: float | None, band: float = POLARITY_NEUTRAL_BAND) -> str | None:
    """negative if valence <= -band, positive if valence >= band, else neutral; None for None."""
    if valence is None:
        return None
    if valence <= -band:
        return "negative"
    return "positive" if valence >= band else "neutral"


def clean_text(value: object, limit: int = MAX_TEXT_CHARS) -> str:
    """Untrusted text as a str that always encodes: bytes decoded leniently, lone surrogates replaced, length capped.

    Control characters are kept (JSON escapes them on the wire); displays escape them (`terminal_safe`)."""
    if isinstance(value, bytes | bytearray):
        text = bytes(value).decode("utf-8", errors="replace")
    elif isinstance(value, str):
        text = value
    else:
        raise MessageError(f"expected text, got {type(value).__name__}: {value!r:.80}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates, e.g. from os.fsdecode of a non-UTF-8 device name
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class Checks:
    """Collects why a message is invalid while its numbers are sanitised: NaN/Inf and out-of-range values become
    None (JSON null) and each one adds a reason."""

    reasons: list[str] = field(default_factory=list)

    def number(
        self, value: object, name: str, lo: float | None = None, hi: float | None = None
    ) -> float | None:
        if value is None:
            return None
        x = _as_float(value, name)
        if not math.isfinite(x):
            self.reasons.append(f"{name} is {x}")
            return None
        if (lo is not None and x < lo) or (hi is not None and x > hi):
            return self._clamp_or_reject(x, name, lo, hi)
        return x

    def count(self, value: object, name: str) -> int:
        try:
            n = operator.index(value)  # type: ignore[arg-type]  # ints and numpy integers, never floats
        except TypeError:
            n = -1
        if isinstance(value, bool) or n < 0:
            raise MessageError(f"{name} must be a non-negative integer, got {value!r:.80}")
        return n

    def _clamp_or_reject(self, x: float, name: str, lo: float | None, hi: float | None) -> float | None:
        for bound in (lo, hi):
            if bound is not None and abs(x - bound) <= _RANGE_TOLERANCE * max(1.0, abs(bound)):
                return bound
        self.reasons.append(f"{name}={x:.6g} is outside [{lo}, {hi}]")
        return None

    def verdict(self, extra: str | None = None) -> dict[str, Any]:
        """{"valid": bool, "invalid_reason": str | None}."""
        reasons = ([clean_text(extra, MAX_NAME_CHARS)] if extra else []) + self.reasons
        if not reasons:
            return {"valid": True, "invalid_reason": None}
        return {"valid": False, "invalid_reason": clean_text("; ".join(reasons), MAX_NAME_CHARS)}


def _as_float(value: object, name: str) -> float:
    if isinstance(value, bool | str | bytes):
        raise MessageError(f"{name} must be a number, got {value!r:.80}")
    try:
        return float(value)  # type: ignore[arg-type]  # numpy scalars and 0-d arrays included
    except (TypeError, ValueError) as exc:
        raise MessageError(f"{name} must be a number, got {value!r:.80}") from exc


def inert_json(payload: object, *, lenient: bool = False) -> str:
    """Compact JSON that is printable ASCII only: json escapes control and non-ASCII characters as \\uXXXX and
    DEL, the one unprintable ASCII character it leaves, is escaped here; so neither the wire nor a terminal that
    shows it can be hijacked by a transcript. NaN/Inf raise ValueError (they are not JSON) unless `lenient`
    (for displaying what a foreign publisher sent), which also shows unknown types as strings."""
    text = json.dumps(
        payload, allow_nan=lenient, ensure_ascii=True, separators=(",", ":"), default=str if lenient else None
    )
    return text.replace("\x7f", "\\u007f")
