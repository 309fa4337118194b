"""Inference backends: selection (pure, every branch), ORT inference equal to torch, refusals of altered
files, foreign plans and foreign I/O contracts, and the torch-free import of the runtime side."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import pytest
import torch

from edge.backends import (
    BackendConfig,
    BackendError,
    BackendUnavailableError,
    EngineIntegrityError,
    EngineMismatchError,
    IOContractError,
)
from edge.backends.ort import CPU, CUDA, TENSORRT, OrtBackend
from edge.backends.plan_key import GpuInfo, PlanKey
from edge.backends.probe import Environment
from edge.backends.select import open_backend, select_backend
from edge.manifest import Artifact, Manifest, load_manifest, write_manifest
from qamoe.build import model_engine
from qamoe.build.engine_config import EngineBuildConfig
from qamoe.build.model_engine import ModelStage
from qamoe.build.runner import BuildContext, run_stages
from qamoe.checkpoint import load_checkpoint, save_checkpoint
from qamoe.config import ModelConfig
from qamoe.export import INPUT_NAMES, OUTPUT_NAMES, _Exportable, example_inputs, torch_reference
from qamoe.modality import Modality
from qamoe.models import create_model

REPO_ROOT = Path(__file__).resolve().parents[2]
DIMS = {Modality.TEXT: 12, Modality.AUDIO: 5, Modality.VISION: 7}
LENS = {Modality.TEXT: 6, Modality.AUDIO: 10, Modality.VISION: 8}
ORIN = GpuInfo("NVIDIA Jetson Orin Nano", "8.7")
H100 = GpuInfo("NVIDIA H100 80GB HBM3", "9.0")
MODEL_HASH = "ab" * 32


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("backends")
    torch.manual_seed(0)
    config = ModelConfig(input_dims=DIMS, d_model=8, expert_hidden=12, n_experts=4, top_k=2, dropout=0.0)
    ckpt = save_checkpoint(root / "ckpt", create_model("qamoe", config), model_name="qamoe")
    lens = {str(m): v for m, v in LENS.items()}
    model_engine.build_environment.cache_clear()
    ctx = BuildContext(root / "engines")
    run_stages([ModelStage(EngineBuildConfig(checkpoint=ckpt, seq_lens=lens, build_plan=False))], ctx)
    model, _ = load_checkpoint(ckpt)
    return SimpleNamespace(root=root, dir=ctx.engines_dir, model=model)


# ---------------------------------------------------------------- selection (pure)
def _artifact(name: str, kind: str, extra: dict) -> Artifact:
    return Artifact(
        name=name, kind=kind, path=f"models/{name}", sha256="0" * 64, size=1, stage="model", extra=extra
    )


def _plan(gpu: GpuInfo, trt: str = "10.3.0", precision: str = "fp16", model: str = MODEL_HASH) -> Artifact:
    key = PlanKey.for_machine(model, trt, gpu, precision)
    return _artifact(key.file_name, "tensorrt-plan", {**key.to_extra(), "max_batch": 32})


ONNX = _artifact("qamoe", "onnx", {"model_hash": MODEL_HASH})
CPU_ONLY = Environment(ort_providers=(CPU,))
GPU_ORT = Environment(ort_providers=(CUDA, CPU), gpu=ORIN)
GPU_ALL = Environment(ort_providers=(TENSORRT, CUDA, CPU), tensorrt_version="10.3.0", cudart=True, gpu=ORIN)
GPU_TRT_NO_ORT_CUDA = Environment(ort_providers=(CPU,), tensorrt_version="10.3.0", cudart=True, gpu=ORIN)


@pytest.mark.parametrize(
    "requested, env, artifacts, label, why",
    [
        ("auto", CPU_ONLY, [ONNX], "ort-cpu", "TensorRT is not importable"),
        ("auto", GPU_ORT, [ONNX], "ort-cuda", "TensorRT is not importable"),
        ("auto", GPU_ALL, [ONNX, _plan(ORIN)], "trt", "matches"),
        ("auto", GPU_ALL, [ONNX], "ort-cuda", "no TensorRT plan in the manifest"),
        ("auto", GPU_ALL, [ONNX, _plan(H100)], "ort-cuda", "compute capability 9.0"),
        ("auto", GPU_ALL, [ONNX, _plan(ORIN, trt="8.6.1")], "ort-cuda", "TensorRT 8.6.1"),
        ("auto", GPU_ALL, [ONNX, _plan(ORIN, model="cd" * 32)], "ort-cuda", "built from model cdcdcdcdcdcd"),
        ("auto", GPU_TRT_NO_ORT_CUDA, [ONNX], "ort-cpu", "no CUDA provider"),
        (
            "auto",
            Environment(tensorrt_version="10.3.0", gpu=ORIN),
            [ONNX, _plan(ORIN)],
            "ort-cpu",
            "cuda-python",
        ),
        ("trt", GPU_ALL, [ONNX, _plan(ORIN, "10.3.0", "int8"), _plan(ORIN)], "trt", "fp16"),
        ("ort", GPU_ALL, [ONNX], "ort-trt", "TensorRT and CUDA"),
        ("ort", GPU_ORT, [ONNX], "ort-cuda", "CUDA"),
        ("ort", CPU_ONLY, [ONNX], "ort-cpu", "no GPU"),
        ("ort-cpu", GPU_ALL, [ONNX, _plan(ORIN)], "ort-cpu", "asked"),
        ("ort-cuda", GPU_ORT, [ONNX], "ort-cuda", "asked"),
    ],
)
def test_selection(requested: str, env: Environment, artifacts: list, label: str, why: str) -> None:
    sel = select_backend(requested, env, artifacts)
    assert sel.label == label, sel.reason
    assert why in sel.reason or why in sel.artifact
    if label == "trt":
        assert sel.artifact.endswith("sm87-fp16.plan") and sel.providers == ()
    else:
        assert sel.artifact == "qamoe" and sel.providers[-1] == CPU


@pytest.mark.parametrize(
    "requested, env, artifacts, error, match",
    [
        ("trt", CPU_ONLY, [ONNX], BackendUnavailableError, "TensorRT is not importable.*--backend ort"),
        ("trt", GPU_ALL, [ONNX, _plan(H100)], EngineMismatchError, "build_engine.py.*--backend ort"),
        ("trt", GPU_ALL, [ONNX], EngineMismatchError, "no TensorRT plan"),
        ("ort-cuda", CPU_ONLY, [ONNX], BackendUnavailableError, "no CUDA GPU.*ort-cpu"),
        ("ort-cuda", GPU_TRT_NO_ORT_CUDA, [ONNX], BackendUnavailableError, "onnxruntime-gpu"),
        ("auto", CPU_ONLY, [], BackendError, "no ONNX model"),
    ],
)
def test_selection_refusals(
    requested: str, env: Environment, artifacts: list, error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        select_backend(requested, env, artifacts)


def test_selection_honours_a_precision_preference() -> None:
    artifacts = [ONNX, _plan(ORIN, precision="int8"), _plan(ORIN)]
    assert select_backend("auto", GPU_ALL, artifacts, precision="int8").artifact.endswith("int8.plan")
    with pytest.raises(EngineMismatchError, match="no fp32"):
        select_backend("trt", GPU_ALL, artifacts, precision="fp32")


def test_backend_config_is_validated() -> None:
    with pytest.raises(BackendError, match="auto, trt, ort"):
        BackendConfig(backend="tensorrt")
    with pytest.raises(BackendError, match="precision"):
        BackendConfig(precision="bf16")


# ---------------------------------------------------------------- ORT inference
@pytest.mark.parametrize("batch", [1, 7])
def test_ort_inference_equals_torch(engines: SimpleNamespace, batch: int) -> None:
    x = example_inputs(DIMS, LENS, batch=batch, seed=batch)
    with open_backend(BackendConfig(backend="auto", engines_dir=engines.dir), env=CPU_ONLY) as backend:
        assert backend.name == "ort-cpu"
        assert backend.io.input_names == tuple(INPUT_NAMES) and backend.io.output_names == tuple(OUTPUT_NAMES)
        got = backend.infer(x)
    ref = torch_reference(engines.model, x)
    assert set(got) == set(ref)
    for k in OUTPUT_NAMES:
        assert got[k].shape == ref[k].shape
        assert float(np.abs(got[k] - ref[k]).max()) <= 1e-4, k


def test_infer_rejects_missing_inputs(engines: SimpleNamespace) -> None:
    with open_backend(
        BackendConfig(backend="ort-cpu", engines_dir=engines.dir, warmup_runs=0), env=CPU_ONLY
    ) as b:
        x = example_inputs(DIMS, LENS, batch=2)
        del x["vision_mask"]
        with pytest.raises(BackendError, match="missing \\['vision_mask'\\]"):
            b.infer(x)


def _copy_engines(engines: SimpleNamespace, dest: Path) -> Path:
    shutil.copytree(engines.dir, dest, ignore=shutil.ignore_patterns(".cache"))
    return dest


def test_a_corrupted_onnx_is_refused(engines: SimpleNamespace, tmp_path: Path) -> None:
    d = _copy_engines(engines, tmp_path / "e")
    path = d / "models/qamoe.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(EngineIntegrityError, match="does not match the manifest.*not loaded.*build_engine.py"):
        open_backend(BackendConfig(backend="ort-cpu", engines_dir=d), env=CPU_ONLY)


def test_an_onnx_with_foreign_io_names_is_refused(engines: SimpleNamespace, tmp_path: Path) -> None:
    renamed = [n.replace("vision", "visual") for n in INPUT_NAMES]
    path = tmp_path / "renamed.onnx"
    args = tuple(torch.from_numpy(v) for v in example_inputs(DIMS, LENS, batch=2).values())
    torch.onnx.export(
        _Exportable(engines.model),
        args,
        str(path),
        input_names=renamed,
        output_names=OUTPUT_NAMES,
        opset_version=17,
        dynamo=False,
    )
    with pytest.raises(
        IOContractError, match="missing inputs \\['vision_feats', 'vision_mask'\\].*visual_feats"
    ):
        OrtBackend(path, BackendConfig(backend="ort-cpu"))
    d = _copy_engines(engines, tmp_path / "e")
    shutil.copy(path, d / "models/qamoe.onnx")
    entry = load_manifest(d / "manifest.json").get("qamoe")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    fixed = Artifact(**{**entry.__dict__, "sha256": digest, "size": path.stat().st_size})
    write_manifest(Manifest(artifacts=(fixed,)), d / "manifest.json")
    with pytest.raises(IOContractError, match="--force --only model"):
        open_backend(BackendConfig(backend="ort-cpu", engines_dir=d), env=CPU_ONLY)


# ---------------------------------------------------------------- TensorRT refusals (fake tensorrt module)
class _NoDeserialize:
    def __init__(self, *args: object) -> None:
        raise AssertionError("the plan must be refused before TensorRT's runtime is created")


@pytest.fixture()
def fake_tensorrt(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    trt = ModuleType("tensorrt")
    trt.__version__ = "10.3.0"
    trt.Runtime = _NoDeserialize
    trt.Logger = SimpleNamespace(WARNING=2)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    return trt


def _plan_on_disk(d: Path, gpu: GpuInfo, data: bytes, recorded: bytes | None = None) -> Artifact:
    key = PlanKey.for_machine(MODEL_HASH, "10.3.0", gpu, "fp16")
    (d / "models").mkdir(parents=True, exist_ok=True)
    (d / "models" / key.file_name).write_bytes(data)
    rec = recorded if recorded is not None else data
    return Artifact(
        name=key.file_name,
        kind="tensorrt-plan",
        path=f"models/{key.file_name}",
        stage="model",
        sha256=hashlib.sha256(rec).hexdigest(),
        size=len(rec),
        extra={**key.to_extra(), "max_batch": 32},
    )


def test_a_plan_for_another_gpu_is_refused_before_reading(fake_tensorrt: ModuleType, tmp_path: Path) -> None:
    from edge.backends.trt import TensorRTBackend

    plan = _plan_on_disk(tmp_path, H100, b"h100 plan")
    (tmp_path / plan.path).unlink()  # were it read first, the error would be about a missing file
    with pytest.raises(EngineMismatchError, match="compute capability 9.0, this GPU is 8.7.*--backend ort"):
        TensorRTBackend(plan, tmp_path, BackendConfig(backend="trt"), env=GPU_ALL, model_hash=MODEL_HASH)


def test_a_plan_for_another_tensorrt_version_is_refused(fake_tensorrt: ModuleType, tmp_path: Path) -> None:
    from edge.backends.trt import TensorRTBackend

    fake_tensorrt.__version__ = "10.7.0"
    plan = _plan_on_disk(tmp_path, ORIN, b"orin plan")
    with pytest.raises(EngineMismatchError, match="TensorRT 10.3.0, this machine has 10.7.0"):
        TensorRTBackend(plan, tmp_path, BackendConfig(backend="trt"), env=GPU_ALL)


def test_a_corrupted_plan_is_never_deserialized(fake_tensorrt: ModuleType, tmp_path: Path) -> None:
    from edge.backends.trt import TensorRTBackend

    plan = _plan_on_disk(tmp_path, ORIN, b"orin plan, flipped", recorded=b"orin plan, original")
    with pytest.raises(EngineIntegrityError, match="does not match the manifest.*not loaded.*--backend ort"):
        TensorRTBackend(plan, tmp_path, BackendConfig(backend="trt"), env=GPU_ALL, model_hash=MODEL_HASH)


def test_trt_backend_without_tensorrt_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edge.backends import trt as trt_backend

    monkeypatch.setattr(trt_backend, "import_tensorrt", lambda: None)
    with pytest.raises(BackendUnavailableError, match="--backend ort"):
        trt_backend.TensorRTBackend(_plan(ORIN), tmp_path, BackendConfig(backend="trt"), env=GPU_ALL)


# ---------------------------------------------------------------- torch-free runtime
def test_backends_run_without_torch(engines: SimpleNamespace) -> None:
    code = (
        "import sys, numpy as np\n"
        "import edge.backends, edge.backends.select, edge.backends.ort, edge.backends.trt\n"
        "import edge.backends.probe\n"
        "from edge.backends import BackendConfig\n"
        "from edge.backends.select import open_backend\n"
        f"b = open_backend(BackendConfig(backend='auto', engines_dir={str(engines.dir)!r}))\n"
        "out = b.infer(b.io.dummy_inputs(3))\n"
        "assert out['valence'].shape == (3,), out\n"
        "assert 'torch' not in sys.modules, 'the runtime imported torch'\n"
        "print(b.name)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ort-cpu"
