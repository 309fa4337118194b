"""Bad-input cases of `qamoe-live`'s engines and of tools/build_engine.py (run by tests/integration/test_bad_input.py)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from tests.support.bad_input_kit import (
    STUBS,
    Case,
    Kit,
    flip_bytes,
    truncate,
)
from tests.support.bad_input_live_cases import live_flags, published
from tests.support.live_fixtures import REPO, Collector


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


def _sha_mismatch(name: str) -> Callable[[Kit], None]:
    """The built artifact `name` no longer matches its manifest entry (the assets folder is shared: edit the
    entry)."""

    def damage(k: Kit) -> None:
        data = k.manifest()
        for a in data["artifacts"]:
            if a["name"] == name:
                a["sha256"] = "0" * 64
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
    published(k, stderr, sub)


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
        "live-vad-artifact-mismatch",
        _engines(_sha_mismatch("silero-vad-v6")),
        4,
        "artifact 'silero-vad-v6' does not match the manifest",
    ),
    Case(
        "live-dsp-artifact-mismatch",
        _engines(_sha_mismatch("audio-dsp")),
        4,
        "artifact 'audio-dsp' does not match the manifest",
    ),
    Case(
        "live-asr-model-missing",
        live_flags("--asr-model", "no-such-model"),
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
