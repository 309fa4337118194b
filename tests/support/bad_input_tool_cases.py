"""Bad-input cases of tools/extract_features.py, qamoe-tap and qamoe-keys (run by tests/integration/test_bad_input.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tests.support.bad_input_kit import (
    BIN,
    Case,
    Kit,
)
from tests.support.bad_input_live_cases import random_bytes
from tests.support.live_fixtures import Collector


# ---------------------------------------------------------------------------------- tools/extract_features.py
def _extract(rows: list[tuple[str, str, str, str, str]] | bytes, clips: dict[str, Callable[[Kit], Path]]):
    """extract_features over Raw/v1/<clip> (clips: name -> maker) and a label.csv (rows, or raw bytes)."""

    def setup(k: Kit) -> list[str]:
        raw = k.tmp / "raw" / "Raw" / "v1"
        raw.mkdir(parents=True)
        for name, make in clips.items():
            shutil.copy(make(k), raw / name)
        labels = k.tmp / "label.csv"
        if isinstance(rows, bytes):
            labels.write_bytes(rows)
        else:
            import csv

            with labels.open("w", newline="", encoding="utf-8") as f:
                csv.writer(f).writerows([("video_id", "clip_id", "text", "label", "mode"), *rows])
        k.watch.append(k.tmp / "out")
        return k.tool(
            "extract_features.py",
            "--raw",
            str(k.tmp / "raw"),
            "--labels",
            str(labels),
            "--out",
            str(k.tmp / "out"),
        )

    return setup


def _extract_without_raw(k: Kit) -> list[str]:
    labels = k.tmp / "label.csv"
    labels.write_text("video_id,clip_id,text,label,mode\nv1,c1,hi,0.5,train\n")
    k.watch.append(k.tmp / "out")
    return k.tool(
        "extract_features.py",
        "--raw",
        str(k.tmp / "nope"),
        "--labels",
        str(labels),
        "--out",
        str(k.tmp / "out"),
    )


LONG_TEXT = "set white with p two soon " * 4000  # 24,000 words, one line


def _shards_hold_texts(k: Kit, stderr: str, sub: Collector | None) -> None:
    out = k.tmp / "out"
    with np.load(out / "train-00000.npz", allow_pickle=False) as z:
        ids, text_mask = z["id"].astype(str).tolist(), z["text_mask"]
    steps = dict(zip(ids, text_mask.sum(axis=1).tolist()))
    assert steps == {"v1$_$empty": 0, "v1$_$long": 48, "v1$_$unicode": steps["v1$_$unicode"]}, steps
    assert steps["v1$_$unicode"] > 0
    assert json.loads((out / "skipped.json").read_text())["skipped"] == []


def _clip_listed_as_skipped(k: Kit, stderr: str, sub: Collector | None) -> None:
    skipped = json.loads((k.tmp / "out" / "skipped.json").read_text())["skipped"]
    assert [s["id"] for s in skipped] == ["v1$_$noise"], skipped
    with np.load(k.tmp / "out" / "train-00000.npz", allow_pickle=False) as z:
        assert z["id"].astype(str).tolist() == ["v1$_$good"]


EXTRACT = [
    Case(
        "extract-labels-not-utf8",
        _extract(
            "video_id,clip_id,text,label,mode\nv1,c1,caf\xe9 cr\xe8me,0.5,train\n".encode("latin-1"), {}
        ),
        3,
        "is not utf-8 text (byte 0xe9 on line 2): save it as utf-8",
    ),
    Case(
        "extract-labels-missing-columns",
        _extract(b"video_id,clip_id,label\nv1,c1,0.5\n", {}),
        3,
        "lacks column(s) text, mode",
    ),
    Case(
        "extract-labels-label-not-a-number",
        _extract([("v1", "c1", "hi", "nan", "train")], {}),
        3,
        "is not a finite number",
    ),
    Case("extract-raw-missing", _extract_without_raw, 3, "is not a folder"),
    Case(
        "extract-transcripts-empty-very-long-unicode",
        _extract(
            [
                ("v1", "empty", "", "0.5", "train"),
                ("v1", "long", LONG_TEXT, "0.1", "train"),
                (
                    "v1",
                    "unicode",
                    "caf\u00e9 \u2603 \U0001f600 \u0645\u0631\u062d\u0628\u0627",
                    "-0.2",
                    "train",
                ),
            ],
            {
                "empty.mpg": lambda k: k.grid(),
                "long.mpg": lambda k: k.grid(),
                "unicode.mpg": lambda k: k.grid(),
            },
        ),
        0,
        "",
        0,
        _shards_hold_texts,
        writes=True,
    ),
    Case(
        "extract-unreadable-clip-skipped-and-listed",
        _extract(
            [("v1", "noise", "x", "0.5", "train"), ("v1", "good", "set white", "0.5", "train")],
            {"noise.mp4": random_bytes("n.mp4", 50_000), "good.mpg": lambda k: k.grid()},
        ),
        0,
        "skipped v1$_$noise",
        1,
        _clip_listed_as_skipped,
        writes=True,
    ),
]


# -------------------------------------------------------------------------------------- qamoe-tap, qamoe-keys
def _keys_dir(k: Kit) -> Path:
    """A key pair made by qamoe-keys itself (inside the case folder, which is watched)."""
    d = k.tmp / "keys"
    subprocess.run(
        [str(BIN / "qamoe-keys"), "generate", str(d), "--name", "server"], check=True, capture_output=True
    )
    return d


SUBSCRIBE_AND_KEYS = [
    Case(
        "tap-endpoint-malformed",
        lambda k: [str(BIN / "qamoe-tap"), "--endpoint", "foo", "--timeout", "1"],
        2,
        "use tcp://127.0.0.1:5556",
    ),
    Case(
        "tap-unknown-topic",
        lambda k: [str(BIN / "qamoe-tap"), "--endpoint", k.endpoint, "--topics", "gossip"],
        2,
        "use sentiment, transcript, health",
    ),
    Case(
        "tap-count-zero", lambda k: [str(BIN / "qamoe-tap"), "--count", "0"], 2, "--count must be at least 1"
    ),
    Case(
        "keys-show-a-wav",
        lambda k: [str(BIN / "qamoe-keys"), "show", str(k.base.tone)],
        2,
        "qamoe-keys generate dir --name name",
    ),
    Case(
        "keys-generate-into-a-file",
        lambda k: [str(BIN / "qamoe-keys"), "generate", str(k.base.tone), "--name", "x"],
        2,
        "pass a directory you can write to",
    ),
    Case(
        "keys-generate-over-existing",
        lambda k: [str(BIN / "qamoe-keys"), "generate", str(_keys_dir(k)), "--name", "server"],
        2,
        "pass --force to replace",
    ),
    Case(
        "keys-name-with-path",
        lambda k: [str(BIN / "qamoe-keys"), "generate", str(k.tmp), "--name", "../evil"],
        2,
        "use 1-64 letters",
    ),
]
