"""One readable, terminal-safe line per received message (what `qamoe-tap` prints).

Payloads are untrusted input here: every string goes through `terminal_safe`, and a payload of an unexpected shape
is shown as escaped JSON rather than raising."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, TypeGuard

from edge.publish.escape import terminal_safe
from edge.publish.subscriber import Received
from edge.publish.wire import (
    TOPIC_FRAME,
    TOPIC_HEALTH,
    TOPIC_SENTIMENT,
    TOPIC_TRANSCRIPT,
    VALENCE_RANGE,
    inert_json,
)
from edge.vocab import MODALITIES

BAR_HALF = 10  # characters on each side of the valence bar's centre
TRANSCRIPT_CHARS = 80


def render(msg: Received) -> str:
    """The line for one message: `HH:MM:SS.mmm topic #seq ...`."""
    p = msg.payload
    head = (
        f"{_clock(p.get('sent'))} {terminal_safe(msg.topic.rsplit('.', 1)[-1], 32):<10} #{_int(p.get('seq'))}"
    )
    try:
        if msg.topic == TOPIC_SENTIMENT:
            return f"{head} {_sentiment(p)}"
        if msg.topic == TOPIC_TRANSCRIPT:
            return f"{head} {_transcript(p)}"
        if msg.topic == TOPIC_HEALTH:
            return f"{head} {_health(p)}"
        if msg.topic == TOPIC_FRAME:
            return f"{head} {_frame(p)}"
    except (AttributeError, KeyError, TypeError, ValueError):
        pass  # a payload from another version or a foreign publisher: fall through to the raw form
    if msg.topic == TOPIC_FRAME:  # never the picture, even from a malformed frame message
        p = {k: ("<image>" if k == "jpeg" else v) for k, v in p.items()}
    return f"{head} {render_json(p, limit=200)}"


def render_json(payload: Any, limit: int | None = None) -> str:
    """The payload as one line of valid JSON, inert in any terminal: json escapes control and non-ASCII
    characters as \\uXXXX, and DEL, the one unprintable ASCII character it leaves, is escaped here.
    With `limit` the line is cut for display (and then no longer JSON)."""
    text = inert_json(payload, lenient=True)
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def _sentiment(p: dict[str, Any]) -> str:
    valence = p.get("valence")
    if not p.get("valid") or not _is_num(valence):
        core = f"INVALID ({terminal_safe(str(p.get('invalid_reason')), 80)})"
    else:
        spread = p.get("predictive_variance")
        sd = f" ±{math.sqrt(spread):.2f}" if _is_num(spread) and spread >= 0 else ""
        core = f"{valence:+.2f} {valence_bar(valence)} {terminal_safe(str(p.get('polarity')), 10):<8}{sd}"
    mods = p.get("modalities") or {}
    rel = " ".join(_modality(m, mods.get(m) or {}) for m in MODALITIES)
    said = terminal_safe(str(p.get("transcript") or ""), TRANSCRIPT_CHARS)
    return f"{core}  {rel}" + (f'  "{said}"' if said else "")


def valence_bar(valence: float) -> str:
    """`[    |###      ]`: filled from the centre (0) towards the valence, full width at ±3."""
    n = round(min(1.0, abs(valence) / VALENCE_RANGE) * BAR_HALF)
    left = " " * (BAR_HALF - n) + "#" * n if valence < 0 else " " * BAR_HALF
    right = "#" * n + " " * (BAR_HALF - n) if valence > 0 else " " * BAR_HALF
    return f"[{left}|{right}]"


def _modality(name: str, m: dict[str, Any]) -> str:
    letter = name[0].upper()
    if not m.get("present"):
        return f"{letter} --- "
    r = m.get("reliability")
    return f"{letter} {r:.2f}" if _is_num(r) else f"{letter} ?   "


def _transcript(p: dict[str, Any]) -> str:
    words = p.get("words") or []
    confs = [w.get("confidence") for w in words if _is_num(w.get("confidence"))]
    conf = f"  conf {sum(confs) / len(confs):.2f}" if confs else ""
    return f'"{terminal_safe(str(p.get("text") or ""), TRANSCRIPT_CHARS)}" ({len(words)} words{conf})'


def _health(p: dict[str, Any]) -> str:
    parts = [f"up {_fmt(p.get('uptime_s'), '.0f')}s"]
    fps = p.get("fps") or {}
    if fps:
        parts.append("fps " + " ".join(f"{_key(k)} {_fmt(v, '.1f')}" for k, v in fps.items()))
    parts.append(f"rtf {_fmt(p.get('real_time_factor'), '.2f')} asr-lag {_fmt(p.get('asr_lag_s'), '.2f')}s")
    drops = {k: q.get("dropped") for k, q in (p.get("queues") or {}).items() if q.get("dropped")}
    if drops:
        parts.append("drops " + " ".join(f"{_key(k)} {_int(v)}" for k, v in drops.items()))
    devices = p.get("devices") or {}
    if devices:
        parts.append(
            " ".join(f"{_key(k)} {terminal_safe(str(d.get('state')), 16)}" for k, d in devices.items())
        )
    msgs = p.get("messages") or {}
    sent = sum(v for v in (msgs.get("published") or {}).values() if _is_num(v))
    lost = sum(v for v in (msgs.get("dropped") or {}).values() if _is_num(v))
    parts.append(f"msgs {sent} dropped {lost}")
    if not p.get("valid", True):
        parts.append(f"INVALID ({terminal_safe(str(p.get('invalid_reason')), 80)})")
    return " | ".join(parts)


def _frame(p: dict[str, Any]) -> str:
    """Size and face box only: the picture itself (base64) is never printed."""
    size = f"{_int(p.get('width'))}x{_int(p.get('height'))}"
    kb = p.get("jpeg_bytes")
    core = f"{size} jpeg {kb / 1000:.1f} kB q{_int(p.get('quality'))}" if _is_num(kb) else f"{size} jpeg ?"
    face = p.get("face")
    if isinstance(face, dict):
        box = (f"face at ({_fmt(face.get('cx'), '.2f')}, {_fmt(face.get('cy'), '.2f')}) size "
               f"{_fmt(face.get('w'), '.2f')}x{_fmt(face.get('h'), '.2f')} score {_fmt(face.get('score'), '.2f')}")
    else:
        box = "no face"
    out = f"{core}  {box}  captured {_clock(p.get('captured'))}"
    if not p.get("valid", True):
        out += f"  INVALID ({terminal_safe(str(p.get('invalid_reason')), 80)})"
    return out


def _clock(tp: Any) -> str:
    """Local wall-clock time of a timepoint, or a placeholder."""
    epoch = tp.get("epoch_s") if isinstance(tp, dict) else None
    if not _is_num(epoch):
        return "??:??:??.???"
    try:
        return datetime.fromtimestamp(epoch).strftime("%H:%M:%S.%f")[:-3]
    except (OverflowError, OSError, ValueError):
        return "??:??:??.???"


def _is_num(x: object) -> TypeGuard[float]:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _fmt(x: Any, spec: str) -> str:
    return format(x, spec) if _is_num(x) else "-"


def _int(x: Any) -> str:
    return str(x) if isinstance(x, int) and not isinstance(x, bool) else "?"


def _key(k: Any) -> str:
    return terminal_safe(str(k), 32)
