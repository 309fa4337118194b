"""Draw the live estimate over a video frame: a valence gauge, a reliability bar per modality, the transcript.

`draw(frame_bgr, state)` is a pure function (the input frame is never modified), so the same code serves the
annotated replay file, the live preview window and unit tests. The state is built from the published
`qamoe.v1.sentiment` body (`OverlayState.from_message`), i.e. the overlay shows exactly what subscribers saw.

Layout (sizes follow the frame's height; legible from 288 px up):

  +--------------------------------------------+
  | valence +1.20 positive        ort-cpu 25 fps|
  | [-----|====|>     ]  gauge, +-1 sd whisker  |
  | text   [#####    ] 0.62                     |
  | audio  [###      ] 0.31                     |
  | vision [/absent/ ]                          |
  |                                             |
  | ... the last words of the window transcript |
  +--------------------------------------------+

Transcripts are untrusted: OpenCV's `putText` draws printable ASCII only, so every string passes through
`drawable()` (accents folded, controls and format characters removed, anything else shown as "?")."""

from __future__ import annotations

import logging
import math
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import cv2
import numpy as np

from edge.errors import UsageError
from edge.vocab import MODALITIES

log = logging.getLogger(__name__)

Color = tuple[int, int, int]  # BGR
Rect = tuple[int, int, int, int]  # x, y, width, height

_FONT = cv2.FONT_HERSHEY_SIMPLEX
# typographic characters that Whisper and device names use, spelt in ASCII; NFKD handles accents and ligatures
_ASCII_SPELLING = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2033": '"', "\u00ab": '"', "\u00bb": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2212": "-",
    "\u2026": "...", "\u00a0": " ",
})  # fmt: skip


class OverlayConfigError(UsageError, ValueError):
    """An overlay setting out of range (exit 2)."""


@dataclass(frozen=True)
class OverlayConfig:
    """How the overlay looks. valence_range/neutral_band match the wire format (edge.publish.wire)."""

    valence_range: float = 3.0
    neutral_band: float = 0.5
    panel_alpha: float = 0.6  # opacity of the dark backdrop behind text and bars
    min_font_scale: float = 0.4  # Hershey scale; below ~0.38 the glyphs blur on a 288-px frame
    transcript_lines: int = 2
    transcript_chars: int = 240  # only the tail of a long transcript can be shown anyway
    negative: Color = (70, 70, 235)
    neutral: Color = (200, 200, 200)
    positive: Color = (90, 210, 90)
    reliability: Color = (235, 180, 60)
    absent: Color = (110, 110, 110)

    def __post_init__(self) -> None:
        if not (self.valence_range > 0 and 0 <= self.neutral_band < self.valence_range):
            raise OverlayConfigError("valence_range must be > 0 and neutral_band in [0, valence_range)")
        if not 0 <= self.panel_alpha <= 1:
            raise OverlayConfigError(f"panel_alpha {self.panel_alpha}: give an opacity in [0, 1]")
        if not 0.2 <= self.min_font_scale <= 3:
            raise OverlayConfigError(f"min_font_scale {self.min_font_scale}: use a value in [0.2, 3]")
        if self.transcript_lines < 0 or self.transcript_chars < 0:
            raise OverlayConfigError(
                "transcript_lines and transcript_chars must be >= 0 (0 hides the transcript)"
            )


@dataclass(frozen=True)
class ModalityView:
    present: bool = False
    reliability: float | None = None


def _absent_modalities() -> dict[str, ModalityView]:
    return {m: ModalityView() for m in MODALITIES}


@dataclass(frozen=True)
class OverlayState:
    """What one frame shows. valence None: no estimate (before the first window, or an invalid window)."""

    valence: float | None = None
    variance: float | None = None
    polarity: str | None = None
    modalities: Mapping[str, ModalityView] = field(default_factory=_absent_modalities)
    transcript: str = ""
    backend: str = ""
    fps: float | None = None
    waiting: bool = True  # no window published yet

    @classmethod
    def from_message(cls, body: Mapping[str, Any], fps: float | None = None) -> OverlayState:
        """The state of a published `qamoe.v1.sentiment` body (invalid windows keep presence, lose numbers)."""
        mods = body.get("modalities") or {}
        return cls(
            valence=_number(body.get("valence")),
            variance=_number(body.get("predictive_variance")),
            polarity=body.get("polarity") if isinstance(body.get("polarity"), str) else None,
            modalities={
                m: ModalityView(
                    bool((mods.get(m) or {}).get("present")), _number((mods.get(m) or {}).get("reliability"))
                )
                for m in MODALITIES
            },
            transcript=str(body.get("transcript") or ""),
            backend=str(body.get("backend") or ""),
            fps=fps,
            waiting=False,
        )

    def with_fps(self, fps: float | None) -> OverlayState:
        return replace(self, fps=fps)


def _number(x: object) -> float | None:
    return float(x) if isinstance(x, int | float) and math.isfinite(x) else None


def drawable(text: str, limit: int | None = None) -> str:
    """`text` as what putText can draw: printable ASCII on one line. Accents are folded ("é" -> "e"), control and
    format characters (ESC, newlines, bidi overrides, zero-width) become spaces or vanish, other characters "?"."""
    out = []
    for ch in unicodedata.normalize("NFKD", text.translate(_ASCII_SPELLING)):
        cat = unicodedata.category(ch)
        if " " <= ch <= "~":
            out.append(ch)
        elif cat == "Cc" or cat[0] == "Z":
            out.append(" ")
        elif cat[0] == "M" or cat[0] == "C":  # combining marks, format chars, surrogates, unassigned
            continue
        else:
            out.append("?")
    clean = " ".join("".join(out).split())
    if limit is not None and len(clean) > limit:
        clean = "..." + clean[-max(0, limit - 3) :]
    return clean


@dataclass(frozen=True)
class Layout:
    """Where each element goes on a frame of a given size (pixels); tests read it to find the regions."""

    font_scale: float
    thickness: int
    line_h: int  # one text line's height including spacing
    pad: int
    panel: Rect
    header_origin: tuple[int, int]
    gauge: Rect
    bars: Mapping[str, Rect]
    label_x: int


def layout(height: int, width: int, config: OverlayConfig = OverlayConfig()) -> Layout:
    scale = max(config.min_font_scale, 0.55 * height / 480)
    thickness = 1 if scale < 0.7 else 2
    (tw, th), base = cv2.getTextSize("vision", _FONT, scale, thickness)
    line_h = round((th + base) * 1.45)
    pad = max(3, line_h // 4)
    label_w = tw + pad
    value_w = cv2.getTextSize("0.00", _FONT, scale, thickness)[0][0] + pad
    panel_w = min(width - 2 * pad, max(int(0.42 * width), label_w + value_w + 6 * line_h))
    x0, y0 = pad, pad
    gauge_h = max(6, int(line_h * 0.7))
    gauge = (x0 + pad, y0 + line_h + pad // 2, panel_w - 2 * pad, gauge_h)
    bar_x = x0 + pad + label_w
    bar_w = max(10, panel_w - 2 * pad - label_w - value_w)
    bar_h = max(5, int(line_h * 0.55))
    first = gauge[1] + gauge_h + pad
    bars = {
        m: (bar_x, first + i * line_h + (line_h - bar_h) // 2, bar_w, bar_h) for i, m in enumerate(MODALITIES)
    }
    panel_h = first + len(MODALITIES) * line_h + pad // 2 - y0
    return Layout(
        font_scale=scale,
        thickness=thickness,
        line_h=line_h,
        pad=pad,
        panel=(x0, y0, panel_w, panel_h),
        header_origin=(x0 + pad, y0 + line_h - pad),
        gauge=gauge,
        bars=bars,
        label_x=x0 + pad,
    )


def draw(frame_bgr: np.ndarray, state: OverlayState, config: OverlayConfig = OverlayConfig()) -> np.ndarray:
    """A copy of `frame_bgr` (H, W, 3 uint8) with the overlay for `state` drawn on it."""
    if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3 or frame_bgr.dtype != np.uint8:
        raise OverlayConfigError(
            f"draw() needs a BGR uint8 (H, W, 3) frame, got {frame_bgr.dtype} {frame_bgr.shape}"
        )
    out = frame_bgr.copy()
    h, w = out.shape[:2]
    lay = layout(h, w, config)
    _backdrop(out, lay.panel, config.panel_alpha)
    _header(out, lay, state, config)
    _gauge(out, lay, state, config)
    for m in MODALITIES:
        _bar(out, lay, m, state.modalities.get(m, ModalityView()), config)
    _status(out, lay, state)
    _transcript(out, lay, state.transcript, config)
    return out


def _text(img: np.ndarray, s: str, org: tuple[int, int], lay: Layout, color: Color) -> None:
    # a dark outline keeps the text legible over a bright face or background
    cv2.putText(img, s, org, _FONT, lay.font_scale, (0, 0, 0), lay.thickness + 2, cv2.LINE_AA)
    cv2.putText(img, s, org, _FONT, lay.font_scale, color, lay.thickness, cv2.LINE_AA)


def _backdrop(img: np.ndarray, rect: Rect, alpha: float) -> None:
    x, y, w, h = _clip(rect, img.shape)
    if w > 0 and h > 0:
        roi = img[y : y + h, x : x + w]
        roi[:] = (roi.astype(np.float32) * (1.0 - alpha)).astype(np.uint8)


def _clip(rect: Rect, shape: tuple[int, ...]) -> Rect:
    x, y, w, h = rect
    x0, y0 = max(0, x), max(0, y)
    return x0, y0, max(0, min(shape[1], x + w) - x0), max(0, min(shape[0], y + h) - y0)


def _tone(valence: float | None, config: OverlayConfig) -> Color:
    if valence is None:
        return config.absent
    if valence >= config.neutral_band:
        return config.positive
    return config.negative if valence <= -config.neutral_band else config.neutral


def _header(img: np.ndarray, lay: Layout, state: OverlayState, config: OverlayConfig) -> None:
    if state.valence is None:
        label = "waiting for the first window" if state.waiting else "valence -- (no estimate)"
    else:
        label = f"valence {state.valence:+.2f} {drawable(state.polarity or '', 12)}"
    _text(img, label, lay.header_origin, lay, _tone(state.valence, config))


def _gauge(img: np.ndarray, lay: Layout, state: OverlayState, config: OverlayConfig) -> None:
    x, y, w, h = lay.gauge
    r = config.valence_range

    def px(v: float) -> int:
        return x + round((min(max(v, -r), r) + r) / (2 * r) * (w - 1))

    cv2.rectangle(img, (x, y), (x + w - 1, y + h - 1), (60, 60, 60), -1)
    cv2.rectangle(img, (px(-config.neutral_band), y), (px(config.neutral_band), y + h - 1), (85, 85, 85), -1)
    v = state.valence
    if v is not None:
        lo, hi = sorted((px(0.0), px(v)))
        cv2.rectangle(img, (lo, y), (max(lo, hi), y + h - 1), _tone(v, config), -1)
        if state.variance is not None:  # +-1 predictive sd
            sd = math.sqrt(state.variance)
            mid = y + h // 2
            cv2.line(img, (px(v - sd), mid), (px(v + sd), mid), (255, 255, 255), 1, cv2.LINE_AA)
        cv2.line(img, (px(v), y - 2), (px(v), y + h + 1), (255, 255, 255), 2)
    for tick in range(-int(r), int(r) + 1):  # a tick per valence unit, the zero one full height
        top = y if tick == 0 else y + h - max(2, h // 3)
        cv2.line(img, (px(float(tick)), top), (px(float(tick)), y + h - 1), (230, 230, 230), 1)
    cv2.rectangle(img, (x, y), (x + w - 1, y + h - 1), (180, 180, 180), 1)


def _bar(img: np.ndarray, lay: Layout, name: str, view: ModalityView, config: OverlayConfig) -> None:
    x, y, w, h = lay.bars[name]
    baseline = y + h // 2 + int(lay.line_h * 0.22)
    _text(img, name, (lay.label_x, baseline), lay, (235, 235, 235) if view.present else config.absent)
    if not view.present:  # hatched and labelled, so "absent" never reads as "reliability 0"
        cx, cy, cw, ch = _clip((x, y, w, h), img.shape)
        roi = img[cy : cy + ch, cx : cx + cw]
        roi[:] = (45, 45, 45)
        yy, xx = np.mgrid[0:ch, 0:cw]
        roi[(xx + yy) % max(4, h // 2) == 0] = config.absent
        cv2.rectangle(img, (x, y), (x + w - 1, y + h - 1), config.absent, 1)
        _text(img, "off", (x + w + lay.pad // 2, baseline), lay, config.absent)
        return
    cv2.rectangle(img, (x, y), (x + w - 1, y + h - 1), (60, 60, 60), -1)
    rel = view.reliability
    if rel is not None:
        fill = round(min(max(rel, 0.0), 1.0) * (w - 2))
        if fill > 0:
            cv2.rectangle(img, (x + 1, y + 1), (x + fill, y + h - 2), config.reliability, -1)
    cv2.rectangle(img, (x, y), (x + w - 1, y + h - 1), (200, 200, 200), 1)
    _text(img, "n/a" if rel is None else f"{rel:.2f}", (x + w + lay.pad // 2, baseline), lay, (235, 235, 235))


def _status(img: np.ndarray, lay: Layout, state: OverlayState) -> None:
    parts = [drawable(state.backend, 16)] if state.backend else []
    parts.append("-- fps" if state.fps is None else f"{state.fps:.0f} fps")
    s = " ".join(parts)
    tw = cv2.getTextSize(s, _FONT, lay.font_scale, lay.thickness)[0][0]
    x = img.shape[1] - tw - lay.pad
    if x <= lay.panel[0] + lay.panel[2]:  # a narrow frame: below the panel instead of beside it
        x, y = lay.pad, lay.panel[1] + lay.panel[3] + lay.line_h
    else:
        y = lay.header_origin[1]
    _text(img, s, (x, y), lay, (235, 235, 235))


def _width(s: str, lay: Layout) -> int:
    return cv2.getTextSize(s, _FONT, lay.font_scale, lay.thickness)[0][0]


def _wrap(text: str, max_w: int, lay: Layout, lines: int) -> list[str]:
    """The last `lines` lines of `text` wrapped to `max_w` pixels; earlier text is marked by a leading "..."
    (a word wider than a line is cut)."""
    out: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if current and _width(candidate, lay) > max_w:
            out.append(current)
            candidate = word
        while _width(candidate, lay) > max_w and len(candidate) > 1:
            candidate = candidate[:-1]
        current = candidate
    if current:
        out.append(current)
    if len(out) > lines:
        out = out[-lines:]
        words = out[0].split()
        while len(words) > 1 and _width("... " + " ".join(words), lay) > max_w:
            words.pop(0)
        out[0] = "... " + " ".join(words)
    return out


def _transcript(img: np.ndarray, lay: Layout, transcript: str, config: OverlayConfig) -> None:
    text = drawable(transcript, config.transcript_chars)
    if not text or config.transcript_lines == 0:
        return
    h, w = img.shape[:2]
    lines = _wrap(text, w - 2 * lay.pad, lay, config.transcript_lines)
    band_h = len(lines) * lay.line_h + lay.pad
    _backdrop(img, (0, h - band_h, w, band_h), config.panel_alpha)
    for i, line in enumerate(lines):
        _text(img, line, (lay.pad, h - band_h + (i + 1) * lay.line_h - lay.pad // 2), lay, (255, 255, 255))
