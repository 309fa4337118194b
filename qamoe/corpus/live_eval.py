"""Reading a live run's published windows back onto the recorded items it was fed (clips, photos).

Shared by tools/evaluate_affect_live.py (voices through `--mic`) and tools/evaluate_faces_live.py (faces
through `--camera`): the items are played in an order hashed from their ids (`play_order`, never from their
labels), one after the other in one real `qamoe-live` run, and each item's valence is the valence of the
published window whose end is nearest the item's end (`item_valence`); `in_progress_valence` reads the windows
that end while the item is still playing. `sentiment_windows` runs the replay.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from edge.cli.liverun import LiveCommand, LiveRunError, run_to_end
from edge.publish.recorder import free_endpoint
from edge.vocab import NS


class Keyed(Protocol):
    @property
    def key(self) -> str: ...


K = TypeVar("K", bound=Keyed)


def play_order(items: Sequence[K]) -> list[K]:
    """The items sorted by a hash of their ids. File order often groups items by label (an actor's clips by
    emotion, FER2013's photos by class), and what qamoe-live carries from one item to the next (the ASR's
    prompt, the VAD and SNR state, the window that still holds the previous photo) would then carry the previous
    item's label into this one's input."""
    return sorted(items, key=lambda c: hashlib.sha256(c.key.encode()).hexdigest())


def item_windows(windows: list[dict[str, Any]], spans: Sequence[tuple[float, float]], hop_s: float
                 ) -> list[dict[str, Any] | None]:  # fmt: skip
    """The window whose end is nearest each item's end (None where none lies within a hop).

    `spans` are the items' (start, end) in media seconds from the stream's start; a window's media time comes
    from its monotonic end, taking the first window to end one hop after the start."""
    if not windows:
        return [None] * len(spans)
    media_end = _media_ends(windows, hop_s)
    out: list[dict[str, Any] | None] = []
    for _, end in spans:
        j = int(np.argmin(np.abs(media_end - end)))
        out.append(windows[j] if abs(media_end[j] - end) <= hop_s else None)
    return out


def item_valence(windows: list[dict[str, Any]], spans: Sequence[tuple[float, float]], hop_s: float) -> np.ndarray:
    """The valence of the window whose end is nearest each item's end (`item_windows`; NaN where none lies
    within a hop, or the window has no valence)."""
    return np.array([np.nan if w is None or w["valence"] is None else w["valence"]
                     for w in item_windows(windows, spans, hop_s)], np.float64)  # fmt: skip


def in_progress_valence(windows: list[dict[str, Any]], spans: Sequence[tuple[float, float]], hop_s: float,
                         after_s: float) -> np.ndarray:  # fmt: skip
    """Each item's mean valence over its windows in progress: those that end at least `after_s` after the item's
    start and more than half a hop before its end (so not the one `item_windows` reads). A live voice is heard
    in these before the ASR has its words (the words come when the VAD segment closes). NaN where the item has
    none with a valence."""
    if not windows:
        return np.full(len(spans), np.nan)
    media_end = _media_ends(windows, hop_s)
    valence = np.array([np.nan if w["valence"] is None else w["valence"] for w in windows], np.float64)
    out = np.full(len(spans), np.nan)
    for i, (start, end) in enumerate(spans):
        inside = (media_end >= start + after_s) & (media_end < end - hop_s / 2) & ~np.isnan(valence)
        if inside.any():
            out[i] = float(valence[inside].mean())
    return out


def _media_ends(windows: list[dict[str, Any]], hop_s: float) -> np.ndarray:
    """The windows' ends in media seconds from the stream's start, the first window ending one hop after it."""
    ends = np.array([w["window"]["end"]["mono_ns"] for w in windows], np.float64)
    return (ends - (ends.min() - hop_s * NS)) / NS


def sentiment_windows(args: Sequence[str], engines: str | os.PathLike[str], timeout_s: float) -> list[dict[str, Any]]:
    """One real `qamoe-live --fast ARGS` (engines `engines`, a free loopback endpoint), its published sentiment
    messages as a real subscriber read them. LiveRunError (its message: qamoe-live's exit code and last error
    line) when it cannot start or does not exit 0."""
    command = LiveCommand(("--fast", *args), engines_dir=engines, endpoint=free_endpoint())
    outcome = run_to_end(command, timeout_s=timeout_s, record=True)
    if outcome.exit_code != 0:
        last = outcome.stderr.strip().splitlines()[-1:] or [""]
        raise LiveRunError(f"qamoe-live {' '.join(args)} exited {outcome.exit_code}: {last[0]}")
    return outcome.of("sentiment")


def live_eval_parser(doc: str, engines: Path) -> argparse.ArgumentParser:
    """The command line the live evaluation tools share: their docstring as help, `--affect` (the folder of
    ../shared/data/affect), `--engines` (qamoe-live's --engines-dir, default `engines`) and `--split`."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=doc)  # fmt: skip
    p.add_argument("--affect", type=Path, required=True, help="the folder of ../shared/data/affect")
    p.add_argument("--engines", type=Path, default=engines, help="qamoe-live's --engines-dir")
    p.add_argument("--split", default="test", choices=("valid", "test"))
    return p
