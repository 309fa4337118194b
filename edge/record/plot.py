"""The timeline picture of a recording: valence with its +-1 sd band coloured by polarity, the three
reliabilities (absent stretches hatched), the transcript's words and the devices' states. matplotlib, drawn on
its Agg canvas (no display, no pyplot state), imported only when a picture is made.

    fig = build_figure(build_timeline(read_recording(Path("rec"))))   # a matplotlib Figure (tests inspect it)
    save_figure(fig, Path("timeline.png"))
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from edge.publish.escape import terminal_safe
from edge.record.errors import MissingDependencyError, RecordWriteError
from edge.record.reader import read_recording
from edge.record.timeline import Timeline, build_timeline
from edge.vocab import MODALITIES

log = logging.getLogger(__name__)
INSTALL_MATPLOTLIB = "pip install 'matplotlib>=3.8' (it comes with the project's [train] extra)"
POLARITY_COLOURS = {"negative": "#d62728", "neutral": "#8c8c8c", "positive": "#2ca02c"}
MODALITY_COLOURS = {"text": "#1f77b4", "audio": "#ff7f0e", "vision": "#9467bd"}
STATE_COLOURS = {"ok": "#b7e1b0", "reconnecting": "#ffbf69", "absent": "#e36a6a"}
MAX_WORD_LABELS = 300  # beyond it words are ticks only: a label per word of an hour's talk is unreadable
AXES = ("valence", "reliability", "events")  # the gid of each axis, top to bottom


def _matplotlib() -> tuple[Any, Any, Any]:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # optional: only plots need it
        from matplotlib.collections import PolyCollection
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MissingDependencyError(f"plotting needs matplotlib, which is not installed: {INSTALL_MATPLOTLIB}") \
            from exc
    return Figure, FigureCanvasAgg, PolyCollection


def build_figure(tl: Timeline, *, title: str | None = None) -> Any:
    """The figure (a `matplotlib.figure.Figure` on an Agg canvas): three axes sharing time, gids in `AXES`."""
    figure_cls, canvas_cls, _ = _matplotlib()
    fig = figure_cls(figsize=(12, 7.5), layout="constrained")
    canvas_cls(fig)
    axes = fig.subplots(3, 1, sharex=True, height_ratios=[3, 2, 1.6])
    for ax, gid in zip(axes, AXES, strict=True):
        ax.set_gid(gid)
        ax.grid(True, alpha=0.3)
    _draw_valence(axes[0], tl)
    _draw_reliability(axes[1], tl)
    _draw_events(axes[2], tl)
    axes[2].set_xlabel("time, s (publisher's monotonic clock; 0 = one hop before the first estimate)")
    span = max(tl.end_s - tl.start_s, 1.0)
    axes[0].set_xlim(tl.start_s - 0.01 * span, tl.end_s + 0.02 * span)
    fig.suptitle(title or f"qamoe-live timeline: source {terminal_safe(tl.source_id, 60)}, {len(tl.t)} windows",
                 parse_math=False)
    return fig


def _draw_valence(ax: Any, tl: Timeline) -> None:
    _, _, poly_cls = _matplotlib()
    quads, colours = [], []
    for i in range(1, len(tl.t)):  # each step between two windows, coloured by the newer window's polarity
        v0, v1, s0, s1 = tl.valence[i - 1], tl.valence[i], tl.sd[i - 1], tl.sd[i]
        if any(math.isnan(x) for x in (v0, v1, s0, s1)):
            continue
        t0, t1 = tl.t[i - 1], tl.t[i]
        quads.append([(t0, v0 - s0), (t1, v1 - s1), (t1, v1 + s1), (t0, v0 + s0)])
        colours.append(POLARITY_COLOURS.get(tl.polarity[i] or "", "#cccccc"))
    band = poly_cls(quads, facecolors=colours, edgecolors="none", alpha=0.35, gid="sd band")
    ax.add_collection(band)
    ax.plot(tl.t, tl.valence, color="black", linewidth=1.4, label="valence", gid="valence")
    for name, colour in POLARITY_COLOURS.items():
        idx = [i for i, p in enumerate(tl.polarity) if p == name]
        ax.scatter([tl.t[i] for i in idx], [tl.valence[i] for i in idx], s=14, color=colour, zorder=3,
                   label=f"{name} (band: ±1 sd)", gid=f"polarity {name}")
    for y in (-0.5, 0.5):
        ax.axhline(y, color="#888888", linestyle=":", linewidth=0.8)
    ax.set_ylim(-3.2, 3.2)
    ax.set_ylabel("valence (-3 .. +3)")
    _legend(ax)


def _runs(flags: list[bool]) -> list[tuple[int, int]]:
    """(first, last) index of each run of True."""
    out, start = [], None
    for i, flag in enumerate([*flags, False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            out.append((start, i - 1))
            start = None
    return out


def _draw_reliability(ax: Any, tl: Timeline) -> None:
    step = (tl.t[1] - tl.t[0]) if len(tl.t) > 1 else 0.5
    for row, m in enumerate(MODALITIES):
        colour = MODALITY_COLOURS[m]
        shown = [r if p else math.nan for r, p in zip(tl.reliability[m], tl.present[m], strict=True)]
        ax.plot(tl.t, shown, color=colour, linewidth=1.4, marker=".", markersize=4, label=m, gid=f"reliability {m}")
        spans = [(tl.t[a] - step / 2, tl.t[b] - tl.t[a] + step) for a, b in _runs([not p for p in tl.present[m]])]
        bars = ax.broken_barh(spans, (-0.12 * (row + 1), 0.1), facecolors="none", edgecolors=colour,
                              hatch="///", gid=f"absent {m}")
        bars.set_label(f"{m} absent" if spans else None)
    ax.set_ylim(-0.4, 1.05)
    ax.set_yticks([0, 0.5, 1.0])
    ax.set_ylabel("reliability\n(hatched: absent)")
    _legend(ax)


def _legend(ax: Any, handles: list[Any] | None = None) -> None:
    """Beside the axis, never over the data (which can be anywhere)."""
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, borderaxespad=0)


def _draw_events(ax: Any, tl: Timeline) -> None:
    roles = list(dict.fromkeys(e.role for e in tl.devices))
    if roles:
        from matplotlib.patches import Patch  # optional, imported by _matplotlib() before this runs

        _legend(ax, [Patch(color=c, label=f"device {state}") for state, c in STATE_COLOURS.items()])
    for row, role in enumerate(roles, 1):
        events = [e for e in tl.devices if e.role == role]
        for e, nxt in zip(events, [*events[1:], None], strict=True):
            end = nxt.t if nxt is not None else tl.end_s
            ax.broken_barh([(e.t, max(end - e.t, 0.05))], (row - 0.35, 0.7), gid=f"device {role} {e.state}",
                           facecolors=STATE_COLOURS.get(e.state, "#cccccc"))
            if e.state != "ok":
                ax.text(e.t, row, f" {e.state}", fontsize=7, va="center", parse_math=False)
    word_t = [t for t, _ in tl.words]
    ax.vlines(word_t, -0.4, 0.0, color="#333333", linewidth=0.8, gid="words")
    for t, text in tl.words[:MAX_WORD_LABELS]:
        ax.text(t, 0.05, terminal_safe(text, 24), rotation=60, fontsize=7, va="bottom", ha="left",
                parse_math=False, gid="word")
    ax.set_yticks(range(len(roles) + 1), ["words", *(terminal_safe(r, 20) for r in roles)])
    ax.set_ylim(-0.5, len(roles) + 0.6)
    ax.set_ylabel("transcript,\ndevices")


def save_figure(fig: Any, out: Path) -> None:
    """Write `fig` to `out` (the format from its suffix, e.g. .png, .svg, .pdf)."""
    try:
        fig.savefig(out, dpi=110)
    except (OSError, ValueError) as exc:
        raise RecordWriteError(f"cannot write {out}: {exc}; choose a writable place and a .png/.svg/.pdf name") \
            from exc


def plot_recording(recording: Path, out: Path, *, source_id: str | None = None) -> Any:
    """Read `recording`, draw its timeline, write it to `out`; returns the figure."""
    _matplotlib()  # a missing matplotlib is reported before the recording is read
    fig = build_figure(build_timeline(read_recording(recording), source_id))
    save_figure(fig, out)
    log.info("wrote %s", out)
    return fig
