"""Message -> page update: each `qamoe.v1.*` payload reduced to the few fields the page draws.

Everything from the wire is untrusted. Numbers are kept only when they are finite numbers within their
documented range (else null); text is cut and every non-printable character (controls, ESC, bidi overrides)
is turned into a visible escape (`terminal_safe`), so that what a browser shows is exactly what was said.
Markup needs no escaping here because the page only ever sets `textContent`; it is kept as text.
"""

from __future__ import annotations

import binascii
import math
from collections.abc import Mapping
from typing import Any

from edge.publish.escape import terminal_safe
from edge.publish.frame import JPEG_MAGIC, MAX_B64_CHARS, MAX_SIDE_PX
from edge.publish.wire import POLARITIES, TOPIC_FRAME, TOPIC_HEALTH, TOPIC_SENTIMENT, TOPIC_TRANSCRIPT
from edge.vocab import MODALITIES
from edge.web.errors import ViewError

TEXT_CHARS = 4096  # a transcript message's text, as the schema bounds it
NAME_CHARS = 256  # ids, device names, details
MAX_ENTRIES = 32  # of an open map shown (devices, queues, fps, asr counters)
VALENCE_RANGE = 3.0


def number(value: object, lo: float = -math.inf, hi: float = math.inf) -> float | None:
    """`value` as a float when it is a finite JSON number (not a bool) within [lo, hi], else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    out = float(value)
    return out if math.isfinite(out) and lo <= out <= hi else None


def text(value: object, limit: int = NAME_CHARS) -> str:
    """`value` as displayable text: non-strings become "", controls become visible escapes, cut to `limit`."""
    return terminal_safe(value, limit) if isinstance(value, str) else ""


def _obj(payload: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = payload.get(key)
    if not isinstance(value, Mapping):
        raise ViewError(f"field {key!r} is not an object: is this a qamoe.v1 publisher?")
    return value


def _mono_s(timepoint: object, what: str) -> float:
    mono = timepoint.get("mono_ns") if isinstance(timepoint, Mapping) else None
    if isinstance(mono, bool) or not isinstance(mono, int) or mono < 0:
        raise ViewError(f"{what} has no monotonic time (mono_ns): is this a qamoe.v1 publisher?")
    return mono / 1e9


def _common(payload: Mapping[str, Any], kind: str) -> dict[str, Any]:
    sent = payload.get("sent")
    seq = payload.get("seq")
    return {
        "kind": kind,
        "seq": seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
        "source": text(payload.get("source_id")),
        "sent": number(sent.get("epoch_s"), 0.0) if isinstance(sent, Mapping) else None,
        "valid": payload.get("valid") is True,
    }


def reduce_sentiment(payload: Mapping[str, Any]) -> dict[str, Any]:
    window = _obj(payload, "window")
    mods = _obj(payload, "modalities")
    variance = number(payload.get("predictive_variance"), 0.0)
    pol = payload.get("polarity")
    modalities = {}
    for name in MODALITIES:
        m = mods.get(name)
        m = m if isinstance(m, Mapping) else {}
        modalities[name] = {
            "present": m.get("present") is True,
            "reliability": number(m.get("reliability"), 0, 1),
        }
    return {
        **_common(payload, "sentiment"),
        "t": _mono_s(window.get("end"), "window.end"),
        "valence": number(payload.get("valence"), -VALENCE_RANGE, VALENCE_RANGE),
        "sd": math.sqrt(variance) if variance is not None else None,
        "polarity": pol if pol in POLARITIES else None,
        "band": number(payload.get("polarity_neutral_band"), 0, VALENCE_RANGE),
        "modalities": modalities,
        "backend": text(payload.get("backend"), 64),
        "invalid_reason": text(payload.get("invalid_reason")),
    }


def reduce_transcript(payload: Mapping[str, Any]) -> dict[str, Any]:
    return {
        **_common(payload, "transcript"),
        "t": _mono_s(payload.get("sent"), "sent"),
        "text": text(payload.get("text"), TEXT_CHARS),
    }


def _entries(value: object) -> list[tuple[str, Any]]:
    """An open map's first MAX_ENTRIES items, names made displayable, sorted by name."""
    if not isinstance(value, Mapping):
        return []
    return sorted((text(k, 64), v) for k, v in list(value.items())[:MAX_ENTRIES])


def reduce_health(payload: Mapping[str, Any]) -> dict[str, Any]:
    devices = [
        {
            "role": role,
            "state": text(d.get("state"), 32),
            "name": text(d.get("name")),
            "detail": text(d.get("detail")),
        }
        for role, d in _entries(payload.get("devices"))
        if isinstance(d, Mapping)
    ]
    queues = [
        {
            "name": name,
            "policy": text(q.get("policy"), 64),
            "depth": number(q.get("depth"), 0),
            "capacity": number(q.get("capacity"), 0),
            "dropped": number(q.get("dropped"), 0),
        }
        for name, q in _entries(payload.get("queues"))
        if isinstance(q, Mapping)
    ]
    messages = payload.get("messages")
    dropped = _entries(messages.get("dropped")) if isinstance(messages, Mapping) else []
    # ASR counters beyond asr_lag_s may be added to health (additive within v1): any top-level number whose
    # name starts with "asr_" is shown in the ASR panel as it comes.
    asr = {k: number(v) for k, v in _entries(payload) if k.startswith("asr_") and k != "asr_lag_s"}
    return {
        **_common(payload, "health"),
        "uptime_s": number(payload.get("uptime_s"), 0),
        "rtf": number(payload.get("real_time_factor"), 0),
        "asr_lag_s": number(payload.get("asr_lag_s"), 0),
        "asr": {k: v for k, v in asr.items() if v is not None},
        "fps": {k: number(v, 0) for k, v in _entries(payload.get("fps"))},
        "devices": devices,
        "queues": queues,
        "messages_dropped": sum(n for _, v in dropped if (n := number(v, 0)) is not None),
    }


FACE_KEYS = ("cx", "cy", "w", "h", "score")


def reduce_frame(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A camera thumbnail: the base64 JPEG passed on as it came once it is checked to be one (bounded, strict
    base64, JPEG header), its size, and the face box (null unless every number is in [0, 1])."""
    jpeg = payload.get("jpeg")
    if not isinstance(jpeg, str) or not 4 <= len(jpeg) <= MAX_B64_CHARS:
        raise ViewError("field 'jpeg' is not a bounded base64 string: is this a qamoe.v1 publisher?")
    try:
        head = binascii.a2b_base64(jpeg, strict_mode=True)
    except (binascii.Error, ValueError):
        raise ViewError("field 'jpeg' is not valid base64") from None
    if not head.startswith(JPEG_MAGIC):
        raise ViewError("field 'jpeg' is not a JPEG (no FF D8 FF header)")
    width, height = number(payload.get("width"), 1, MAX_SIDE_PX), number(payload.get("height"), 1, MAX_SIDE_PX)
    if width is None or height is None:
        raise ViewError("fields 'width'/'height' are not thumbnail sizes: is this a qamoe.v1 publisher?")
    face = payload.get("face")
    box = {k: number(face.get(k), 0, 1) for k in FACE_KEYS} if isinstance(face, Mapping) else None
    return {
        **_common(payload, "frame"),
        "t": _mono_s(payload.get("captured"), "captured"),
        "width": int(width),
        "height": int(height),
        "jpeg": jpeg,
        "face": box if box is not None and all(v is not None for v in box.values()) else None,
    }


REDUCERS = {
    TOPIC_SENTIMENT: reduce_sentiment,
    TOPIC_TRANSCRIPT: reduce_transcript,
    TOPIC_HEALTH: reduce_health,
    TOPIC_FRAME: reduce_frame,
}


def reduce_message(topic: str, payload: Mapping[str, Any]) -> dict[str, Any] | None:
    """The page update for one message; None for a topic the page does not show. ViewError when a field the
    page needs is missing or mistyped."""
    reducer = REDUCERS.get(topic)
    return reducer(payload) if reducer is not None else None
