"""Bad input: a catalogue of wrong inputs to the real command-line tools, each run as a real subprocess.

Every case states the documented exit code and a needle of the one clear error line that names the fix, and
the test checks, for every case: that exit code; exactly that one problem line on stderr (INFO/DEBUG log lines
and an argparse usage block aside; native library noise counts as a problem line); no "Traceback" at the
default log level; nothing half-written (every watched file and folder - the engines dir, the case's working
folder, an output folder - is byte-for-byte as it was before). Inputs that are supported after all (an 8 kHz,
a 6-channel, an 8-bit, a float64 WAV; the readable half of a truncated file; silence) run to the end and are
checked on what a real ZeroMQ subscriber receives.

The bad inputs are made in tmp_path from real files: the GRID clips of ../shared/media/grid (cases that need
them skip without), the random-init QA-MoE engine and checkpoint of tests.live_fixtures (through the real
build path), truncated and byte-flipped copies, wrong headers, a plan keyed for another GPU. TensorRT cannot
run here, so the plan cases put stand-ins for `tensorrt` and `cuda-python` on PYTHONPATH
(tests/bad_input_stubs): a GPU that "exists" and a runtime whose deserializer leaves a marker file, which
shows whether a plan ever reached it.

The table in docs/RELIABILITY.md ("Bad input") lists the same cases.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.bad_input_kit import (
    BIN,
    CLIP,
    STUBS,
    TIMEOUT_S,
    WORDS,
    Base,
    Case,
    Kit,
    flip_bytes,
    make_base,
    problem_lines,
    snapshot,
    transcode_mp4,
    truncate,
    write_float64_wav,
    write_wav,
)
from tests.live_fixtures import REPO, Collector, free_endpoint


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    return make_base(tmp_path_factory.mktemp("bad-input"))


# ------------------------------------------------------------------------------------------ qamoe-live: flags
def _flags(*args: str) -> Callable[[Kit], list[str]]:
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
    Case("live-flag-misspelt", _flags("--windw", "3"), 2, "unrecognized arguments: --windw 3"),
    Case("live-flag-hop-zero", _flags("--hop", "0"), 2, "--hop 0.0: give 0 < hop <= 1 s"),
    Case("live-flag-hop-over-1s", _flags("--hop", "2.0"), 2, "--hop 2.0: give 0 < hop <= 1 s"),
    Case("live-flag-window-negative", _flags("--window", "-1"), 2, "--window -1.0: give a window length"),
    Case(
        "live-flag-hop-longer-than-window",
        _flags("--window", "0.4", "--hop", "0.5"),
        2,
        "longer than --window 0.4",
    ),
    Case("live-flag-window-not-the-engines", _flags("--window", "6"), 2, "built for 4 s windows every 0.5 s"),
    Case("live-flag-unknown-backend", _flags("--backend", "tensorflow"), 2, "use one of auto, trt, ort"),
    Case("live-flag-endpoint-malformed", _flags("--endpoint", "foo"), 2, "use tcp://127.0.0.1:5556"),
    Case("live-flag-endpoint-not-loopback", _flags("--endpoint", "tcp://0.0.0.0:5556"), 2, "--allow-remote"),
    Case("live-flag-duration-negative", _flags("--duration", "-1"), 2, "--duration -1.0: give a positive"),
    Case("live-flag-loop-with-fast", _flags("--loop", "--fast"), 2, "drop --fast"),
    Case(
        "live-flag-curve-clients-missing",
        _flags("--curve-server-key", "server.key_secret", "--curve-clients", "clients"),
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


def _random_bytes(name: str, n: int) -> Callable[[Kit], Path]:
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


def _published(k: Kit, stderr: str, sub: Collector | None) -> None:
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
        _media(_random_bytes("noise.mp4", 200_000), both=True),
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
        _published,
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


# ---------------------------------------------------------------------------------------- qamoe-live: engines
def _engines(damage: Callable[[Kit], object], *flags: str, fast: bool = True) -> Callable[[Kit], list[str]]:
    """qamoe-live on a damaged copy of the engines (fast: --fast; a run that must publish goes real time, or
    its 2 s of tone would be replayed before the subscriber has joined)."""

    def setup(k: Kit) -> list[str]:
        k.engines_copy()
        damage(k)
        return k.live("--camera", "none", "--mic", str(k.base.tone), *(["--fast"] if fast else []), *flags)

    return setup


def _model_path(k: Kit) -> Path:
    return k.engines / "models" / "qamoe.onnx"


def _rename_input(k: Kit) -> None:
    import onnx

    model = onnx.load(_model_path(k))
    for t in model.graph.input:
        if t.name == "text_feats":
            t.name = "text_features"
    for node in model.graph.node:
        node.input[:] = ["text_features" if x == "text_feats" else x for x in node.input]
    onnx.save(model, _model_path(k))
    k.rehash("qamoe")


def _export_6s_window(k: Kit) -> None:
    """The same model exported for 6 s windows (150 audio, 60 vision steps): a real ONNX of other shapes."""
    from qamoe.checkpoint import load_checkpoint
    from qamoe.export import export_onnx
    from qamoe.modality import parse_modality

    model, _ = load_checkpoint(k.base.checkpoint)
    export_onnx(
        model,
        _model_path(k),
        {parse_modality(s): n for s, n in {"text": 48, "audio": 150, "vision": 60}.items()},
    )
    k.rehash("qamoe")


def _edit_model_entry(**extra: object) -> Callable[[Kit], None]:
    def damage(k: Kit) -> None:
        data = k.manifest()
        for a in data["artifacts"]:
            if a["name"] == "qamoe":
                a["extra"].update(extra)
        k.write_manifest(data)

    return damage


def _drop_model(k: Kit) -> None:
    data = k.manifest()
    data["artifacts"] = [a for a in data["artifacts"] if a["name"] != "qamoe"]
    k.write_manifest(data)


def _plan(trt: str, gpu: str, cc: str, *, tamper: bool = False) -> Callable[[Kit], None]:
    """A TensorRT plan entry keyed for (TensorRT trt, gpu, compute capability cc); the stand-in machine has
    TensorRT 10.0.1 on an "NVIDIA Test GPU" (8.6). tamper: the file changes after its sha256 was recorded."""

    def damage(k: Kit) -> None:
        plan = k.engines / "models" / "qamoe-test.plan"
        plan.write_bytes(b"serialized engine bytes")
        data = k.manifest()
        onnx_entry = next(a for a in data["artifacts"] if a["name"] == "qamoe")
        entry = {
            **onnx_entry,
            "name": "qamoe-trt-fp16",
            "kind": "tensorrt-plan",
            "path": "models/qamoe-test.plan",
            "sha256": hashlib.sha256(plan.read_bytes()).hexdigest(),
            "size": plan.stat().st_size,
            "extra": {
                "model_hash": onnx_entry["extra"]["model_hash"],
                "tensorrt_version": trt,
                "gpu_name": gpu,
                "compute_capability": cc,
                "precision": "fp16",
                "max_batch": 8,
            },
        }
        data["artifacts"].append(entry)
        k.write_manifest(data)
        if tamper:
            plan.write_bytes(b"serialized engine bytes, altered")
        k.env["PYTHONPATH"] = os.pathsep.join([str(STUBS), str(REPO)])
        k.env["QAMOE_TEST_DESERIALIZED"] = str(k.tmp.parent / f"{k.tmp.name}-deserialized")

    return damage


def _not_deserialized(k: Kit, stderr: str, sub: Collector | None) -> None:
    assert not Path(k.env["QAMOE_TEST_DESERIALIZED"]).exists(), "the plan reached TensorRT's deserializer"


def _deserialized(k: Kit, stderr: str, sub: Collector | None) -> None:
    assert Path(k.env["QAMOE_TEST_DESERIALIZED"]).exists(), "the stand-in deserializer was never called"


def _fell_back_to_ort(k: Kit, stderr: str, sub: Collector | None) -> None:
    _not_deserialized(k, stderr, sub)
    assert "no TensorRT plan fits this machine" in stderr and "backend ort-cpu (asked: auto)" in stderr
    _published(k, stderr, sub)


OTHER_GPU = ("8.6.1", "NVIDIA Jetson Orin Nano", "8.7")
THIS_GPU = ("10.0.1", "NVIDIA Test GPU", "8.6")

ENGINES = [
    Case(
        "live-engines-dir-missing",
        lambda k: k.live("--engines-dir", str(k.tmp / "nope"), "--camera", "none", "--mic", str(k.base.tone)),
        4,
        "run `python tools/build_engine.py`",
    ),
    Case(
        "live-manifest-truncated-json",
        _engines(lambda k: truncate(k.engines / "manifest.json", k.engines / "manifest.json", 200)),
        4,
        "is corrupt (expecting value",
    ),
    Case(
        "live-manifest-not-utf8",
        _engines(lambda k: flip_bytes(k.engines / "manifest.json", k.engines / "manifest.json", 0, 4)),
        4,
        "delete it and run `python tools/build_engine.py`",
    ),
    Case(
        "live-manifest-newer-schema",
        _engines(lambda k: k.write_manifest({**k.manifest(), "schema_version": 99})),
        4,
        "rebuild with `python tools/build_engine.py`",
    ),
    Case("live-manifest-without-model", _engines(_drop_model), 4, "no onnx model in the manifest"),
    Case(
        "live-onnx-truncated",
        _engines(lambda k: truncate(_model_path(k), _model_path(k), 1000)),
        4,
        "does not match the manifest",
    ),
    Case(
        "live-onnx-bytes-flipped",
        _engines(lambda k: flip_bytes(_model_path(k), _model_path(k), 4000, 8)),
        4,
        "does not match the manifest",
    ),
    Case("live-onnx-wrong-input-names", _engines(_rename_input), 4, "breaks the qa-moe i/o contract"),
    Case("live-onnx-wrong-shapes", _engines(_export_6s_window), 4, "audio_feats [150, 22] (needs [100, 22])"),
    Case(
        "live-feature-spec-mismatch",
        _engines(_edit_model_entry(feature_spec_digest="0" * 64)),
        4,
        "trained on another feature spec",
    ),
    Case(
        "live-plan-other-gpu-and-tensorrt",
        _engines(_plan(*OTHER_GPU), "--backend", "trt"),
        4,
        "built with tensorrt 8.6.1, this machine has 10.0.1",
        check=_not_deserialized,
    ),
    Case(
        "live-plan-altered-after-build",
        _engines(_plan(*THIS_GPU, tamper=True), "--backend", "trt"),
        4,
        "altered or truncated: not loaded",
        check=_not_deserialized,
    ),
    Case(
        "live-plan-tensorrt-cannot-load",
        _engines(_plan(*THIS_GPU), "--backend", "trt"),
        4,
        "tensorrt could not deserialize",
        check=_deserialized,
    ),
    Case(
        "live-plan-other-gpu-auto-falls-back",
        _engines(_plan(*OTHER_GPU), fast=False),
        0,
        "",
        0,
        _fell_back_to_ort,
        True,
    ),
    Case(
        "live-asr-model-missing",
        _flags("--asr-model", "no-such-model"),
        4,
        "pass a local faster-whisper model",
    ),
]


# -------------------------------------------------------------------------------------- tools/build_engine.py
def _build(make_checkpoint: Callable[[Kit, Path], object], *, existing_model: bool = False):
    """build_engine --checkpoint BAD into a fresh engines dir (assets only: the model stage really runs), or
    with existing_model into one that already holds the good checkpoint's engine."""

    def setup(k: Kit) -> list[str]:
        if existing_model:
            k.engines_copy()
        else:
            k.engines = k.tmp / "engines"
            k.engines.mkdir()
            shutil.copy(REPO / "engines" / "manifest.json", k.engines / "manifest.json")
            (k.engines / "assets").symlink_to(REPO / "engines" / "assets", target_is_directory=True)
            k.watch.append(k.engines)
        ck = k.tmp / "ckpt"
        shutil.copytree(k.base.checkpoint, ck)
        make_checkpoint(k, ck)
        k.watch.append(ck)
        return k.tool(
            "build_engine.py", "--engines-dir", str(k.engines), "--only", "model", "--checkpoint", str(ck)
        )

    return setup


def _weights(ck: Path) -> Path:
    return ck / "model.safetensors"


def _config_edit(**changes: object) -> Callable[[Kit, Path], None]:
    def make(k: Kit, ck: Path) -> None:
        meta = json.loads((ck / "config.json").read_text())
        for key, value in changes.items():
            target = meta
            *parents, leaf = key.split("__")
            for p in parents:
                target = target[p]
            target[leaf] = value
        (ck / "config.json").write_text(json.dumps(meta))

    return make


BUILD = [
    Case(
        "build-checkpoint-weights-truncated-head",
        _build(lambda k, ck: truncate(_weights(ck), _weights(ck), 5000)),
        2,
        "is corrupt or truncated",
    ),
    Case(
        "build-checkpoint-weights-tail-cut",
        _build(lambda k, ck: truncate(_weights(ck), _weights(ck), -100)),
        2,
        "is corrupt or truncated",
    ),
    Case(
        "build-checkpoint-weights-header-flipped",
        _build(lambda k, ck: flip_bytes(_weights(ck), _weights(ck), 8, 32)),
        2,
        "re-save or re-train it",
    ),
    Case(
        "build-checkpoint-config-truncated",
        _build(lambda k, ck: truncate(ck / "config.json", ck / "config.json", 100)),
        2,
        "is not valid json",
    ),
    Case(
        "build-checkpoint-weights-other-shapes",
        _build(_config_edit(model_config__d_model=64)),
        2,
        "does not match its config",
    ),
    Case("build-checkpoint-newer-version", _build(_config_edit(version=99)), 2, "upgrade qamoe-live"),
    Case(
        "build-precision-unknown",
        lambda k: k.tool("build_engine.py", "--checkpoint", str(k.base.checkpoint), "--precision", "fp8"),
        2,
        "invalid choice: 'fp8'",
    ),
    Case(
        "build-checkpoint-missing-weights",
        _build(lambda k, ck: _weights(ck).unlink()),
        2,
        "must be a checkpoint directory",
    ),
    Case(
        "build-checkpoint-config-truncated-model-up-to-date",
        _build(lambda k, ck: truncate(ck / "config.json", ck / "config.json", 100), existing_model=True),
        2,
        "is not valid json",
    ),
    Case(
        "build-check-manifest-corrupt",
        lambda k: (
            (k.engines_copy(), truncate(k.engines / "manifest.json", k.engines / "manifest.json", 200))
            and k.tool("build_engine.py", "--check", "--engines-dir", str(k.engines))
        ),
        1,
        "delete it and run `python tools/build_engine.py`",
    ),
    Case(
        "build-check-artifact-altered",
        lambda k: (
            (k.engines_copy(), flip_bytes(_model_path(k), _model_path(k), 4000, 8))
            and k.tool("build_engine.py", "--check", "--engines-dir", str(k.engines))
        ),
        1,
        "build_engine.py",
    ),
]


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
            {"noise.mp4": _random_bytes("n.mp4", 50_000), "good.mpg": lambda k: k.grid()},
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

CATALOGUE = [*FLAGS, *MEDIA, *ENGINES, *BUILD, *EXTRACT, *SUBSCRIBE_AND_KEYS]


def _param(case: Case):
    marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
    return pytest.param(case, id=case.id, marks=marks)


def test_catalogue_ids_are_unique_and_many() -> None:
    ids = [c.id for c in CATALOGUE]
    assert len(ids) == len(set(ids)) and len(ids) >= 25


@pytest.mark.parametrize("case", [_param(c) for c in CATALOGUE])
def test_bad_input(case: Case, base: Base, tmp_path: Path) -> None:
    kit = Kit(base, tmp_path / "case", free_endpoint(), base.engines)
    kit.tmp.mkdir()
    argv = case.setup(kit)
    kit.watch += [base.engines, kit.tmp]
    before = snapshot(kit.watch)
    env = {**os.environ, **kit.env}
    env.pop("QAMOE_ENGINES_DIR", None)
    sub = Collector(kit.endpoint) if case.subscribe else None
    if sub is not None:
        time.sleep(0.2)
    try:
        run = subprocess.run(
            argv, cwd=kit.tmp, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
        )
    finally:
        if sub is not None:
            sub.stop()
    err = run.stderr
    assert run.returncode == case.code, f"exit {run.returncode}, expected {case.code}:\n{err[-3000:]}"
    assert "Traceback" not in err, err[-3000:]
    problems = problem_lines(err)
    assert len(problems) == case.lines, f"expected {case.lines} problem line(s), got:\n" + "\n".join(problems)
    if case.lines:
        assert case.needle.lower() in problems[0].lower(), f"{case.needle!r} not in {problems[0]!r}"
    if case.check is not None:
        case.check(kit, err, sub)
    if not (case.writes and run.returncode == 0):
        assert snapshot(kit.watch) == before, "the run changed or left files behind"
