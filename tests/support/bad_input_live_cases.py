"""Bad-input cases of `qamoe-live`: its flags and its media (run by tests/integration/test_bad_input.py)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tests.support.bad_input_kit import (
    CLIP,
    WORDS,
    Case,
    Kit,
    flip_bytes,
    transcode_mp4,
    truncate,
    write_float64_wav,
    write_wav,
)
from tests.support.live_fixtures import Collector


# ------------------------------------------------------------------------------------------ qamoe-live: flags
def live_flags(*args: str) -> Callable[[Kit], list[str]]:
    """A valid source and engines, one wrong flag (a later --endpoint overrides the kit's)."""
    return lambda k: k.live("--camera", "none", "--mic", str(k.base.tone), *args)


def _uri(*args: str) -> Callable[[Kit], list[str]]:
    return lambda k: k.live(*args)


FLAGS = [
    Case(
        "live-uri-unsupported-scheme",
        _uri("--camera", "ftp://cam.local/x", "--mic", "none"),
        2,
        "use one of rtsp",
    ),
    Case(
        "live-uri-stream-without-host", _uri("--camera", "rtsp://", "--mic", "none"), 2, "rtsp://192.168.1.20"
    ),
    Case(
        "live-uri-port-out-of-range", _uri("--camera", "rtsp://cam:99999/s", "--mic", "none"), 2, "bad port"
    ),
    Case("live-uri-negative-index", _uri("--camera", "-1", "--mic", "none"), 2, "for a file pass ./-1"),
    Case(
        "live-uri-file-url-with-host",
        _uri("--video-file", "file://host/clip.mp4"),
        2,
        "file:///absolute/path",
    ),
    Case("live-uri-stream-as-video-file", _uri("--video-file", "rtsp://cam/s"), 2, "use --camera url"),
    Case("live-uri-network-mic", _uri("--mic", "http://host/a.wav", "--camera", "none"), 2, "network audio"),
    Case("live-uri-control-characters", _uri("--video-file", "clip\x1b[31m.mp4"), 2, "control characters"),
    Case("live-uri-nothing-to-analyse", _uri("--camera", "none", "--mic", "none"), 2, "nothing to analyse"),
    Case(
        "live-uri-video-file-and-camera",
        _uri("--video-file", "x.mp4", "--camera", "0"),
        2,
        "do not also pass --camera",
    ),
    Case("live-flag-misspelt", live_flags("--windw", "3"), 2, "unrecognized arguments: --windw 3"),
    Case("live-flag-hop-zero", live_flags("--hop", "0"), 2, "--hop 0.0: give 0 < hop <= 1 s"),
    Case("live-flag-hop-over-1s", live_flags("--hop", "2.0"), 2, "--hop 2.0: give 0 < hop <= 1 s"),
    Case("live-flag-window-negative", live_flags("--window", "-1"), 2, "--window -1.0: give a window length"),
    Case(
        "live-flag-hop-longer-than-window",
        live_flags("--window", "0.4", "--hop", "0.5"),
        2,
        "longer than --window 0.4",
    ),
    Case("live-flag-window-not-the-engines", live_flags("--window", "6"), 2, "built for 4 s windows every 0.5 s"),
    Case("live-flag-unknown-backend", live_flags("--backend", "tensorflow"), 2, "use one of auto, trt, ort"),
    Case("live-flag-endpoint-malformed", live_flags("--endpoint", "foo"), 2, "use tcp://127.0.0.1:5556"),
    Case("live-flag-endpoint-not-loopback", live_flags("--endpoint", "tcp://0.0.0.0:5556"), 2, "--allow-remote"),
    Case("live-flag-duration-negative", live_flags("--duration", "-1"), 2, "--duration -1.0: give a positive"),
    Case("live-flag-loop-with-fast", live_flags("--loop", "--fast"), 2, "drop --fast"),
    Case(
        "live-flag-curve-clients-missing",
        live_flags("--curve-server-key", "server.key_secret", "--curve-clients", "clients"),
        2,
        "allowed-clients directory clients does not exist",
    ),
]


# ------------------------------------------------------------------------------------------ qamoe-live: media
def _media(make: Callable[[Kit], Path], *, camera: bool = False, both: bool = False, fast: bool = True):
    """qamoe-live on the file `make` writes: as --mic (default), --camera or --video-file (both). fast: --fast
    (deterministic); without, real time, for a file --fast would replay before a subscriber has joined."""

    def setup(k: Kit) -> list[str]:
        path, pace = make(k), ["--fast"] if fast else []
        if both:
            return k.live("--video-file", str(path), *pace)
        if camera:
            return k.live("--camera", str(path), "--mic", "none", *pace)
        return k.live("--camera", "none", "--mic", str(path), *pace)

    return setup


def _wav(rate: int, channels: int, width: int) -> Callable[[Kit], Path]:
    def make(k: Kit) -> Path:
        k.grid()
        return write_wav(
            k.tmp / f"speech-{rate}-{channels}ch-{8 * width}bit.wav", rate, channels, width, k.base.speech
        )

    return make


def _mp4(k: Kit) -> Path:
    path = k.tmp / "clip.mp4"
    return path if path.exists() else transcode_mp4(k.grid(), path)


def random_bytes(name: str, n: int) -> Callable[[Kit], Path]:
    def make(k: Kit) -> Path:
        path = k.tmp / name
        path.write_bytes(np.random.default_rng(0).bytes(n))
        return path

    return make


def _text_file(name: str) -> Callable[[Kit], Path]:
    def make(k: Kit) -> Path:
        path = k.tmp / name
        path.write_text("not audio\n" * 50)
        return path

    return make


def _heard(k: Kit, stderr: str, sub: Collector | None) -> None:
    """A supported input: windows were published and the ASR heard the GRID sentence in it."""
    assert sub is not None
    sentiment = sub.of("sentiment")
    assert sentiment and all(b["valid"] for b in sentiment), stderr
    words = " ".join(w["text"] for b in sub.of("transcript") for w in b["words"]).lower()
    hits = [w for w in WORDS if re.search(rf"\b{w}\b", words)]
    assert len(hits) >= 2, f"heard {words!r}"


def published(k: Kit, stderr: str, sub: Collector | None) -> None:
    assert sub is not None and sub.of("sentiment"), stderr


def _silent(k: Kit, stderr: str, sub: Collector | None) -> None:
    """Silence: estimates keep coming, text absent in every window, no words published."""
    assert sub is not None
    sentiment = sub.of("sentiment")
    assert sentiment, stderr
    assert not any(b["modalities"]["text"]["present"] for b in sentiment)
    assert not [w for b in sub.of("transcript") for w in b["words"]]


MEDIA = [
    Case(
        "live-missing-video-file",
        _uri("--video-file", "/nonexistent/clip.mp4"),
        3,
        "/nonexistent/clip.mp4: no such file",
    ),
    Case("live-missing-camera-device", _uri("--camera", "/dev/video99", "--mic", "none"), 3, "--camera none"),
    Case(
        "live-missing-mic-file",
        _uri("--camera", "none", "--mic", "gone.wav"),
        3,
        "--mic gone.wav: no such file",
    ),
    Case(
        "live-missing-file-name-not-utf8",
        _uri("--camera", "none", "--mic", os.fsdecode(b"caf\xe9.wav")),
        3,
        "--mic caf\\udce9.wav: no such file",
    ),  # the undecodable byte is shown escaped, never a crash
    Case(
        "live-directory-as-camera",
        lambda k: k.live("--camera", str(k.tmp), "--mic", "none"),
        3,
        "is a directory",
    ),
    Case(
        "live-mp4-truncated-index-lost",
        _media(lambda k: truncate(_mp4(k), k.tmp / "cut.mp4", 2 * _mp4(k).stat().st_size // 3), both=True),
        3,
        "cannot decode this file",
    ),
    Case(
        "live-mp4-header-flipped",
        _media(lambda k: flip_bytes(_mp4(k), k.tmp / "flipped.mp4", 0, 64), both=True),
        3,
        "cannot decode this file",
    ),
    Case(
        "live-random-bytes-as-mp4",
        _media(random_bytes("noise.mp4", 200_000), both=True),
        3,
        "cannot decode this file",
    ),
    Case("live-text-file-as-wav", _media(_text_file("notes.wav")), 3, "cannot read this media file"),
    Case(
        "live-wav-riff-header-flipped",
        _media(lambda k: flip_bytes(k.base.tone, k.tmp / "flipped.wav", 0, 12)),
        3,
        "cannot read this media file",
    ),
    Case(
        "live-mpg-first-kilobyte",
        _media(lambda k: truncate(k.grid(), k.tmp / "head.mpg", 1024), both=True),
        3,
        "no audio track",
    ),
    Case(
        "live-audio-only-as-camera", _media(lambda k: k.base.tone, camera=True), 3, "cannot decode this file"
    ),
    Case("live-wav-4khz", _media(_wav(4000, 1, 2)), 3, "4000 hz audio is not supported"),
    Case("live-wav-16-channels", _media(_wav(16000, 16, 2)), 3, "16 audio channels are not supported"),
    Case(
        "live-wav-no-samples",
        _media(lambda k: write_wav(k.tmp / "empty.wav", 16000, 1, 2, np.zeros(0))),
        3,
        "holds no samples",
    ),
    # supported after all: resampled / mixed down / converted, and the ASR still hears the sentence
    Case("live-wav-8khz", _media(_wav(8000, 1, 2)), 0, "", 0, _heard, True),
    Case("live-wav-48khz-6-channels", _media(_wav(48000, 6, 2)), 0, "", 0, _heard, True),
    Case("live-wav-8-bit", _media(_wav(16000, 1, 1)), 0, "", 0, _heard, True),
    Case(
        "live-wav-float64",
        _media(lambda k: k.grid() and write_float64_wav(k.tmp / "f64.wav", k.base.speech)),
        0,
        "",
        0,
        _heard,
        True,
    ),
    Case(
        "live-mpg-second-half-missing",
        _media(
            lambda k: truncate(k.grid(), k.tmp / "half.mpg", CLIP.stat().st_size // 2), both=True, fast=False
        ),
        0,
        "",
        0,
        published,
        True,
    ),
    Case(
        "live-silence-empty-transcripts",
        _media(lambda k: write_wav(k.tmp / "silence.wav", 16000, 1, 2, np.zeros(48000)), fast=False),
        0,
        "",
        0,
        _silent,
        True,
    ),
]
