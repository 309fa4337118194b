"""The model stage of the engine build: checkpoint -> ONNX with parity, manifest entry, TensorRT keys and
refusals. Hermetic and CPU-only: TensorRT paths are exercised through their pure parts and fakes."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from edge.backends.contract import MODEL_INPUTS, MODEL_OUTPUTS
from edge.backends.plan_key import GpuInfo, PlanKey, plan_mismatches
from edge.backends.probe import Environment
from edge.features.spec import FeatureSpec, StreamSpec
from edge.manifest import Artifact, Manifest, load_manifest, write_manifest
from qamoe.build import model_engine, model_export, tensorrt_build
from qamoe.build.engine_config import EngineBuildConfig, parse_seq_lens, window_geometry
from qamoe.build.errors import BuildConfigError, ParityError
from qamoe.build.model_engine import ModelStage
from qamoe.build.runner import BuildContext, run_stages
from qamoe.checkpoint import WEIGHTS_FILE, save_checkpoint
from qamoe.config import ModelConfig
from qamoe.data.featureset import FeatureSet
from qamoe.data.shards import write_shard
from qamoe.export import INPUT_NAMES, OUTPUT_NAMES, example_inputs, torch_reference
from qamoe.modality import MODALITIES, Modality
from qamoe.models import create_model

REPO_ROOT = Path(__file__).resolve().parents[2]
DIMS = {Modality.TEXT: 12, Modality.AUDIO: 5, Modality.VISION: 7}
SPEC = FeatureSpec(
    window_s=2.0,
    hop_s=0.5,
    text=StreamSpec("text", None, 6, tuple(f"t{i}" for i in range(12)), context_s=4.0),
    audio=StreamSpec("audio", 5.0, 10, tuple(f"a{i}" for i in range(5))),
    vision=StreamSpec("vision", 4.0, 8, tuple(f"v{i}" for i in range(7))),
)
SPEC_LENS = {Modality.TEXT: 6, Modality.AUDIO: 10, Modality.VISION: 8}
NO_TRT = Environment()


def tiny_checkpoint(directory: Path, feature_spec: dict | None = None, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    config = ModelConfig(input_dims=DIMS, d_model=8, expert_hidden=12, n_experts=4, top_k=2, dropout=0.0)
    model = create_model("qamoe", config)
    return save_checkpoint(directory, model, model_name="qamoe", feature_spec=feature_spec)


def tiny_shards(directory: Path, n: int = 20) -> Path:
    """Real-format shards, windows shorter in audio and longer in text than the model's (pads and crops)."""
    rng = np.random.default_rng(0)
    lens = {Modality.TEXT: 9, Modality.AUDIO: 7, Modality.VISION: 8}
    feats = {m: rng.normal(size=(n, lens[m], DIMS[m])).astype(np.float32) for m in MODALITIES}
    masks = {m: rng.random((n, lens[m])) > 0.2 for m in MODALITIES}
    feats = {m: feats[m] * masks[m][..., None] for m in MODALITIES}
    fs = FeatureSet(
        feats=feats, masks=masks, labels=np.zeros(n, np.float32), ids=np.array([f"s{i}" for i in range(n)])
    )
    directory.mkdir(parents=True, exist_ok=True)
    write_shard(directory / "train-000.npz", fs, split="train", feature_spec=SPEC.to_dict())
    return directory


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("engines")
    ckpt = tiny_checkpoint(root / "ckpt", SPEC.to_dict())
    shards = tiny_shards(root / "shards")
    model_engine.build_environment.cache_clear()
    stage = ModelStage(EngineBuildConfig(checkpoint=ckpt, calib_shards=shards))
    ctx = BuildContext(root / "engines")
    outcomes = run_stages([stage], ctx)
    return SimpleNamespace(root=root, ckpt=ckpt, shards=shards, stage=stage, ctx=ctx, outcomes=outcomes)


def test_model_stage_writes_a_checked_onnx_and_its_manifest_entry(built: SimpleNamespace) -> None:
    import onnx

    assert [o.status for o in built.outcomes] == ["built"]
    entry = load_manifest(built.ctx.manifest_path).get("qamoe")
    path = built.ctx.engines_dir / entry.path
    onnx.checker.check_model(str(path), full_check=True)
    assert sorted(p.name for p in path.parent.iterdir()) == ["qamoe.onnx"], (
        "weights must live inside the one file"
    )
    assert [t.name for t in entry.inputs] == list(MODEL_INPUTS)
    assert [t.name for t in entry.outputs] == list(MODEL_OUTPUTS)
    assert entry.inputs[0].shape == ("batch", 6, 12), "batch dynamic, time fixed by the feature spec"
    assert entry.inputs[2].shape == ("batch", 10, 5)
    extra = entry.extra
    assert (
        extra["model_hash"]
        == __import__("hashlib").sha256((built.ckpt / WEIGHTS_FILE).read_bytes()).hexdigest()
    )
    assert extra["feature_spec_digest"] == SPEC.digest and extra["seq_lens_from"] == "checkpoint feature spec"
    assert extra["opset"] == 17
    assert set(extra["parity_max_abs_diff"]) == {"random_batch1", "random_batch8", "input_space_batch8",
                                                 "real_windows"}
    assert max(extra["parity_max_abs_diff"].values()) <= 1e-4


def test_onnx_matches_torch_on_fresh_inputs(built: SimpleNamespace) -> None:
    import onnxruntime as ort

    from qamoe.checkpoint import load_checkpoint

    model, _ = load_checkpoint(built.ckpt)
    sess = ort.InferenceSession(
        str(built.ctx.engines_dir / "models/qamoe.onnx"), providers=["CPUExecutionProvider"]
    )
    for batch in (1, 5):
        x = example_inputs(DIMS, SPEC_LENS, batch=batch, seed=batch + 10)
        ref = torch_reference(model, x)
        got = dict(zip(OUTPUT_NAMES, sess.run(OUTPUT_NAMES, x), strict=True))
        assert max(float(np.abs(got[k] - ref[k]).max()) for k in OUTPUT_NAMES) <= 1e-4


def test_second_run_is_up_to_date_and_a_new_checkpoint_rebuilds(built: SimpleNamespace) -> None:
    assert [o.status for o in run_stages([built.stage], built.ctx)] == ["up to date"]
    key = built.stage.build_key()
    other = tiny_checkpoint(built.root / "ckpt2", SPEC.to_dict(), seed=1)
    assert ModelStage(EngineBuildConfig(checkpoint=other)).build_key() != key


def test_parity_failure_fails_the_build_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import qamoe.export

    ckpt = tiny_checkpoint(tmp_path / "ckpt", SPEC.to_dict())
    real = qamoe.export.torch_reference
    monkeypatch.setattr(
        qamoe.export, "torch_reference", lambda m, x: {k: v + 1e-3 for k, v in real(m, x).items()}
    )
    ctx = BuildContext(tmp_path / "engines")
    with pytest.raises(ParityError, match="max abs diff"):
        run_stages([ModelStage(EngineBuildConfig(checkpoint=ckpt))], ctx)
    assert not (ctx.engines_dir / "models/qamoe.onnx").exists()
    assert not ctx.manifest_path.exists()


def test_window_geometry_sources() -> None:
    cfg = EngineBuildConfig(checkpoint=Path("x"), seq_lens={"text": 3, "audio": 4, "vision": 5})
    live = {"feature_spec": SPEC.to_dict(), "model_config": {}}
    assert window_geometry(live, cfg)[0] == {"text": 6, "audio": 10, "vision": 8}, (
        "the spec wins over the flag"
    )
    assert window_geometry({"feature_spec": {"synthetic": 0}}, cfg)[0] == {"text": 3, "audio": 4, "vision": 5}
    in_extra = {
        "feature_spec": {},
        "model_config": {"extra": {"seq_lens": {"text": 1, "audio": 2, "vision": 3}}},
    }
    assert window_geometry(in_extra, EngineBuildConfig(checkpoint=Path("x")))[0] == {
        "text": 1,
        "audio": 2,
        "vision": 3,
    }
    with pytest.raises(BuildConfigError, match="--seq-lens text=48"):
        window_geometry({"feature_spec": {"mmsa": "mosi"}}, EngineBuildConfig(checkpoint=Path("x")))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"precision": "bf16"}, "precision"),
        ({"seq_lens": {"text": 3, "audio": 4}}, "seq-lens"),
        ({"calib_shards": Path("/nonexistent/shards")}, "calib-shards"),
        ({"min_batch": 4, "opt_batch": 1}, "min_batch"),
    ],
)
def test_engine_build_config_rejects_bad_values(kwargs: dict, match: str) -> None:
    with pytest.raises(BuildConfigError, match=match):
        EngineBuildConfig(checkpoint=Path("x"), **kwargs)


def test_parse_seq_lens() -> None:
    assert parse_seq_lens("text=48,audio=100,vision=40") == {"text": 48, "audio": 100, "vision": 40}
    with pytest.raises(BuildConfigError, match="text=48"):
        parse_seq_lens("48,100,40")


@pytest.mark.parametrize(
    "env, reason",
    [
        (NO_TRT, "TensorRT is not importable"),
        (Environment(tensorrt_version="10.3.0"), "cuda-python"),
        (Environment(tensorrt_version="10.3.0", cudart=True), "no CUDA GPU"),
        (Environment(tensorrt_version="10.3.0", cudart=True, gpu=GpuInfo("Orin", "8.7")), None),
    ],
)
def test_why_no_plan(env: Environment, reason: str | None) -> None:
    got = model_engine._no_plan_reason(env, EngineBuildConfig(checkpoint=Path("x")))
    assert (got is None) if reason is None else (reason in got)


def test_without_tensorrt_one_line_says_why_and_only_onnx_is_built(
    built: SimpleNamespace, caplog: pytest.LogCaptureFixture
) -> None:
    entries = load_manifest(built.ctx.manifest_path).of_stage("model")
    assert [a.kind for a in entries] == ["onnx"]
    caplog.set_level(logging.INFO, logger="qamoe.build.model_engine")
    assert built.stage._plan(built.ctx, None) is None
    lines = [r.getMessage() for r in caplog.records if "no TensorRT plan" in r.getMessage()]
    assert len(lines) == 1 and "TensorRT is not importable" in lines[0]


def test_plan_key_names_the_file_and_detects_every_mismatch() -> None:
    gpu = GpuInfo("NVIDIA Jetson Orin Nano", "8.7")
    key = PlanKey.for_machine("ab" * 32, "10.3.0", gpu, "fp16")
    assert key.file_name == "qamoe-abababababab-trt10.3.0-nvidia-jetson-orin-nano-sm87-fp16.plan"
    assert PlanKey.from_extra(key.to_extra()) == key
    assert plan_mismatches(key, tensorrt_version="10.3.0", gpu=gpu, model_hash="ab" * 32) == []
    other = plan_mismatches(
        key, tensorrt_version="8.5.2", gpu=GpuInfo("NVIDIA H100", "9.0"), model_hash="cd" * 32
    )
    assert len(other) == 4 and "8.5.2" in other[0] and "9.0" in other[1] and "H100" in other[2]
    assert plan_mismatches(key, tensorrt_version=None, gpu=None) == [
        "TensorRT is not importable here",
        "no CUDA GPU is visible here",
    ]


def test_profile_and_calibration_batches() -> None:
    settings = tensorrt_build.TrtBuildSettings(max_batch=32)
    shapes = tensorrt_build.profile_shapes({"text_feats": (1, 48, 388), "text_mask": (1, 48)}, settings)
    assert shapes["text_feats"] == ((1, 48, 388), (1, 48, 388), (32, 48, 388))
    assert shapes["text_mask"] == ((1, 48), (1, 48), (32, 48))
    windows = {"a": np.arange(20.0).reshape(10, 2), "b": np.ones((10, 3), bool)}
    batches = tensorrt_build.calibration_batches(windows, 4)
    assert len(batches) == 2 and batches[1]["a"][0, 0] == 8.0 and batches[0]["b"].shape == (4, 3)


def _fake_trt() -> SimpleNamespace:
    class Calibrator:
        def __init__(self) -> None:
            pass

    return SimpleNamespace(
        BuilderFlag=SimpleNamespace(FP16="FP16", INT8="INT8"),
        IInt8EntropyCalibrator2=Calibrator,
    )


def test_precision_flags_and_int8_needs_calibration(built: SimpleNamespace, tmp_path: Path) -> None:
    trt, onnx_path = _fake_trt(), built.ctx.engines_dir / "models/qamoe.onnx"
    flags: list[str] = []
    config = SimpleNamespace(set_flag=flags.append, set_calibration_profile=lambda p: None)
    args = (trt, SimpleNamespace(), config, "profile")
    fp16 = tensorrt_build.TrtBuildSettings(precision="fp16")
    assert tensorrt_build._configure_precision(*args, fp16, onnx_path, [], None) is None and flags == ["FP16"]
    int8 = tensorrt_build.TrtBuildSettings(precision="int8")
    with pytest.raises(BuildConfigError, match="--calib-shards"):
        tensorrt_build._configure_precision(*args, int8, onnx_path, [], None)
    assert flags == ["FP16", "FP16", "INT8"]
    assert not tensorrt_build.has_qdq(onnx_path)


def test_check_reports_a_plan_for_another_machine(built: SimpleNamespace, tmp_path: Path) -> None:
    engines = tmp_path / "engines"
    (engines / "models").mkdir(parents=True)
    onnx = load_manifest(built.ctx.manifest_path).get("qamoe")
    (engines / onnx.path).write_bytes((built.ctx.engines_dir / onnx.path).read_bytes())
    key = PlanKey.for_machine(onnx.extra["model_hash"], "10.3.0", GpuInfo("NVIDIA H100", "9.0"), "fp16")
    (engines / "models" / key.file_name).write_bytes(b"plan bytes")
    plan = Artifact(
        name="qamoe-plan",
        kind="tensorrt-plan",
        path=f"models/{key.file_name}",
        stage="model",
        sha256=hashlib.sha256(b"plan bytes").hexdigest(),
        size=10,
        extra={**key.to_extra(), "max_batch": 32},
    )
    write_manifest(Manifest(artifacts=(onnx, plan)), engines / "manifest.json")
    problems = model_engine.plan_problems(engines / "manifest.json", NO_TRT)
    assert {p.artifact for p in problems} == {"qamoe-plan"} and any("TensorRT" in p.message for p in problems)
    spec = importlib.util.spec_from_file_location("build_engine_tool", REPO_ROOT / "tools/build_engine.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    model_engine.build_environment.cache_clear()
    assert tool.main(["--engines-dir", str(engines), "--check"]) == 1
    model_engine.build_environment.cache_clear()


def test_contract_names_match_the_exporter() -> None:
    assert list(MODEL_INPUTS) == INPUT_NAMES and list(MODEL_OUTPUTS) == OUTPUT_NAMES


def test_build_tool_refuses_model_stage_without_checkpoint(tmp_path: Path) -> None:
    import subprocess

    proc = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "tools/build_engine.py"),
            "--engines-dir",
            str(tmp_path),
            "--only",
            "model",
            "--checkpoint",
            "none",  # the default is the shipped checkpoint; `none` asks for the assets only
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2 and "--checkpoint" in proc.stderr


def test_manifest_entry_is_json_round_trippable(built: SimpleNamespace) -> None:
    data = json.loads(built.ctx.manifest_path.read_text())
    assert data["artifacts"][0]["extra"]["seq_lens"] == {"text": 6, "audio": 10, "vision": 8}
    assert model_export.TRT_ATOL["fp32"] <= 1e-3
