"""What a timeline picture shows, taken out of a recording (no matplotlib here: `edge.record.plot` draws it).

Times are seconds on the publisher's monotonic clock, from one hop before the first estimate (about when capture
began: the first window ends one hop after the start, and its 4 s reach back before it). A window is drawn at
its end: the estimate is what was known then. One source is drawn: the one given, or the first the recording
holds. In a `--fast` replay the clock runs faster than the media, so times there are processing times.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edge.record.errors import RecordingReadError
from edge.record.reader import Recording
from edge.vocab import MODALITIES

log = logging.getLogger(__name__)
NS = 1_000_000_000
NAN = float("nan")


@dataclass(frozen=True)
class DeviceEvent:
    """A device's state from this time on (a change, or the first report), e.g. the camera going absent."""

    t: float
    role: str
    state: str
    detail: str | None


@dataclass
class Timeline:
    """The series of one source. Missing numbers are NaN; `present[m][i]` says whether window i had modality m."""

    source_id: str
    t: list[float] = field(default_factory=list)
    valence: list[float] = field(default_factory=list)
    sd: list[float] = field(default_factory=list)
    polarity: list[str | None] = field(default_factory=list)
    reliability: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in MODALITIES})
    present: dict[str, list[bool]] = field(default_factory=lambda: {m: [] for m in MODALITIES})
    words: list[tuple[float, str]] = field(default_factory=list)
    devices: list[DeviceEvent] = field(default_factory=list)
    start_s: float = 0.0  # the first time anything happened, if before the origin (the left edge)
    end_s: float = 0.0  # the last time anything happened (the right edge of the picture)


def _num(value: Any) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else NAN


def _mono(p: Mapping[str, Any], *path: str) -> int | None:
    value: Any = p
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def build_timeline(recording: Recording, source_id: str | None = None) -> Timeline:
    """The timeline of `source_id` (default: the first source with a sentiment window).
    RecordingReadError when there is no sentiment window of that source."""
    windows = [r.payload for r in recording.of("sentiment")]
    sources = list(dict.fromkeys(str(p.get("source_id")) for p in windows))
    source = source_id if source_id is not None else (sources[0] if sources else None)
    windows = [p for p in windows if p.get("source_id") == source and _mono(p, "window", "start", "mono_ns")]
    if not windows:
        which = f"of source {source_id!r} " if source_id is not None else ""
        raise RecordingReadError(f"{recording.files[0].parent}: no sentiment window {which}to plot"
                                 f" (sources there: {', '.join(sources) or 'none'})")
    if len(sources) > 1 and source_id is None:
        log.warning("plotting source %s; the recording also holds %s", source, ", ".join(sources[1:]))
    t0 = _origin(windows)
    tl = Timeline(str(source))
    for p in windows:
        _add_window(tl, p, t0)
    for r in recording.records:
        if r.payload.get("source_id") != source:
            continue
        if r.of("transcript"):
            _add_words(tl, r.payload, t0)
        elif r.of("health"):
            _add_devices(tl, r.payload, t0)
    tl.start_s = min([0.0, *(t for t, _ in tl.words), *(e.t for e in tl.devices)])
    tl.end_s = max([*tl.t, *(t for t, _ in tl.words), *(e.t for e in tl.devices)])
    return tl


def _origin(windows: list[dict[str, Any]]) -> int:
    """One hop (the step between the first two window ends; 0.5 s with one window) before the first end."""
    ends = sorted(e for p in windows if (e := _mono(p, "window", "end", "mono_ns")) is not None)
    if not ends:
        return min(_mono(p, "window", "start", "mono_ns") or 0 for p in windows)
    hop = ends[1] - ends[0] if len(ends) > 1 and ends[1] > ends[0] else NS // 2
    return ends[0] - hop


def _add_window(tl: Timeline, p: Mapping[str, Any], t0: int) -> None:
    end = _mono(p, "window", "end", "mono_ns")
    tl.t.append(((end if end is not None else t0) - t0) / NS)
    tl.valence.append(_num(p.get("valence")))
    variance = _num(p.get("predictive_variance"))
    tl.sd.append(math.sqrt(variance) if variance >= 0 else NAN)
    polarity = p.get("polarity")
    tl.polarity.append(polarity if isinstance(polarity, str) else None)
    modalities = p.get("modalities")
    for m in MODALITIES:
        info = modalities.get(m) if isinstance(modalities, Mapping) else None
        info = info if isinstance(info, Mapping) else {}
        tl.present[m].append(info.get("present") is True)
        tl.reliability[m].append(_num(info.get("reliability")))


def _add_words(tl: Timeline, p: Mapping[str, Any], t0: int) -> None:
    for word in p.get("words") or []:
        start = _mono(word, "start", "mono_ns") if isinstance(word, Mapping) else None
        if start is not None and isinstance(word.get("text"), str):
            tl.words.append(((start - t0) / NS, word["text"]))


def _add_devices(tl: Timeline, p: Mapping[str, Any], t0: int) -> None:
    sent = _mono(p, "sent", "mono_ns")
    devices = p.get("devices")
    if sent is None or not isinstance(devices, Mapping):
        return
    for role, info in devices.items():
        if not isinstance(info, Mapping) or not isinstance(info.get("state"), str):
            continue
        last = next((e for e in reversed(tl.devices) if e.role == role), None)
        if last is None or last.state != info["state"]:
            detail = info.get("detail") if isinstance(info.get("detail"), str) else None
            tl.devices.append(DeviceEvent((sent - t0) / NS, str(role), info["state"], detail))
