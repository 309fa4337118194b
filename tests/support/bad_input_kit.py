"""The materials and machinery of the bad-input catalogue (tests/integration/test_bad_input.py): real media and engines to
damage, a per-case folder and watch list (`Kit`), a case (`Case`), what counts as a problem line on stderr,
and a snapshot of files to show that a failed run left nothing behind."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from edge.cli.liverun import LiveCommand
from tests.support.live_fixtures import GRID, REPO, Collector, make_live_engines

CLIP = GRID / "id2_vcd_swwp2s.mpg"  # "set white with p two soon"
WORDS = ("set", "white", "with", "two", "soon")
STUBS = Path(__file__).resolve().parent / "bad_input_stubs"
BIN = Path(sys.executable).parent
TIMEOUT_S = 180


# ---------------------------------------------------------------------------------------------- the materials
@dataclass(frozen=True)
class Base:
    """Made once per module: real engines and checkpoint, a tone WAV, and (with GRID) real media."""

    root: Path
    engines: Path  # the live engines (assets + a random-init QA-MoE through the real build path)
    checkpoint: Path  # the checkpoint that engine was built from
    tone: Path  # 2 s of 220 Hz at 16 kHz: a valid source for cases that fail before reading it
    grid: bool
    speech: np.ndarray  # the GRID clip's audio, 16 kHz mono float32 (empty without GRID)


def make_base(root: Path) -> Base:
    engines = make_live_engines(root)
    tone = root / "tone.wav"
    t = np.arange(32000) / 16000
    write_wav(tone, 16000, 1, 2, 0.3 * np.sin(2 * np.pi * 220 * t))
    speech = np.zeros(0, np.float32)
    if CLIP.exists():
        from edge.asr.audio_file import load_audio_16k

        speech = load_audio_16k(CLIP)
        speech = 0.9 * speech / max(1e-6, float(np.abs(speech).max()))
    return Base(root, engines, root / "checkpoint", tone, CLIP.exists(), speech)


def write_wav(path: Path, rate: int, channels: int, width: int, signal: np.ndarray) -> Path:
    """PCM WAV: `signal` (16 kHz, floats in [-1, 1]) resampled to `rate` (linear), copied to every channel."""
    n = int(len(signal) * rate / 16000)
    y = np.interp(np.arange(n) / rate, np.arange(len(signal)) / 16000, signal) if n else np.zeros(0)
    y = np.repeat(y[:, None], channels, axis=1)
    data = (y * 127 + 128).astype(np.uint8) if width == 1 else (y * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(data.tobytes())
    return path


def write_float64_wav(path: Path, signal: np.ndarray) -> Path:
    """IEEE-float WAV (format tag 3), 64-bit samples, 16 kHz mono: the wave module writes PCM only."""
    import struct

    data = signal.astype("<f8").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, 16000, 16000 * 8, 8, 64)
    body = (
        b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    )
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def transcode_mp4(src: Path, dst: Path) -> Path:
    """An H.264/AAC MP4 of a GRID clip (its index, the `moov` atom, comes last: cut the tail, it is lost)."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vs = out.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=25)
        vs.width, vs.height, vs.pix_fmt = 360, 288, "yuv420p"
        aus = out.add_stream("aac", rate=44100)
        for frame in inp.decode(video=0, audio=0):
            frame.pts = None
            if isinstance(frame, av.VideoFrame):
                out.mux(vs.encode(frame.reformat(360, 288, "yuv420p")))
            else:
                out.mux(aus.encode(frame))
        out.mux(vs.encode(None))
        out.mux(aus.encode(None))
    return dst


def flip_bytes(src: Path, dst: Path, start: int, count: int) -> Path:
    data = bytearray(src.read_bytes())
    for i in range(start, start + count):
        data[i] ^= 0xFF
    dst.write_bytes(bytes(data))
    return dst


def truncate(src: Path, dst: Path, keep: int) -> Path:
    """The first `keep` bytes of src (negative: all but the last -keep)."""
    data = src.read_bytes()
    dst.write_bytes(data[:keep])
    return dst


# --------------------------------------------------------------------------------------------------- one case
@dataclass
class Kit:
    """What a case's setup gets: the shared materials, a folder of its own (the run's working directory) and
    the paths the run must leave unchanged (`watch`)."""

    base: Base
    tmp: Path
    endpoint: str
    engines: Path
    env: dict[str, str] = field(default_factory=dict)
    watch: list[Path] = field(default_factory=list)

    def engines_copy(self) -> Path:
        """A private copy of the engines (assets stay a symlink) to damage; watched."""
        self.engines = self.tmp / "engines"
        shutil.copytree(self.base.engines, self.engines, symlinks=True)
        self.watch.append(self.engines)
        return self.engines

    def manifest(self) -> dict:
        return json.loads((self.engines / "manifest.json").read_text())

    def write_manifest(self, data: dict) -> None:
        (self.engines / "manifest.json").write_text(json.dumps(data, indent=1))

    def rehash(self, name: str) -> None:
        """Make the manifest entry `name` match its replaced file again: only the file's content is wrong."""
        data = self.manifest()
        for a in data["artifacts"]:
            if a["name"] == name:
                blob = (self.engines / a["path"]).read_bytes()
                a["sha256"], a["size"] = hashlib.sha256(blob).hexdigest(), len(blob)
        self.write_manifest(data)

    def live(self, *args: str) -> list[str]:
        return LiveCommand(args, engines_dir=self.engines, endpoint=self.endpoint).argv()

    def tool(self, name: str, *args: str) -> list[str]:
        return [sys.executable, str(REPO / "tools" / name), *args]

    def grid(self) -> Path:
        if not self.base.grid:
            pytest.skip(f"{CLIP} not found: the GRID clips live in ../shared/media/grid")
        return CLIP


@dataclass(frozen=True)
class Case:
    """`setup(kit) -> argv`. code: the exit code; needle: in the one problem line (lower-cased compare).
    lines: problem lines expected (1 for a refusal, 0 for an input that is supported after all).
    check(kit, stderr, collector): what a supported input must produce. writes: a successful run may add files
    (an extraction's output). xfail: the fix that is still needed."""

    id: str
    setup: Callable[[Kit], list[str]]
    code: int
    needle: str
    lines: int = 1
    check: Callable[[Kit, str, Collector | None], None] | None = None
    subscribe: bool = False
    xfail: str | None = None
    writes: bool = False


INFO_LINE = re.compile(r"^(\d\d:\d\d:\d\d )?(INFO|DEBUG) ")


def problem_lines(stderr: str) -> list[str]:
    """stderr without INFO/DEBUG log lines and without an argparse usage block (its `usage:` line and the
    indented continuation lines): what a user would read as the problem."""
    out, in_usage = [], False
    for line in stderr.splitlines():
        if line.startswith("usage:"):
            in_usage = True
            continue
        if in_usage and line.startswith(" "):
            continue
        in_usage = False
        if line.strip() and not INFO_LINE.match(line):
            out.append(line)
    return out


def snapshot(paths: list[Path]) -> dict[str, object]:
    """Every file (sha256), folder and symlink (its target) under `paths`, not following symlinks."""
    state: dict[str, object] = {}
    for root in paths:
        if not os.path.lexists(root):
            state[str(root)] = None
            continue
        if root.is_file():
            state[str(root)] = hashlib.sha256(root.read_bytes()).hexdigest()
            continue
        for folder, dirs, files in os.walk(root, followlinks=False):
            here = Path(folder)
            state[str(here)] = "dir"
            for name in dirs + files:
                p = here / name
                if p.is_symlink():
                    state[str(p)] = f"-> {os.readlink(p)}"
                elif p.is_file():
                    state[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return state
