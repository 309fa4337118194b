#!/usr/bin/env python
"""Latency and throughput of the QA-MoE model per backend, in one run, on the same weights and inputs.

    python tools/bench_engines.py                   # fresh default QA-MoE, live shapes, torch vs ORT-CPU
    python tools/bench_engines.py --checkpoint DIR  # a trained checkpoint
    python tools/bench_engines.py --profile         # + ONNX Runtime per-op-type time shares
    python tools/bench_engines.py --against OLD.onnx  # + ORT-CPU batch 1, this export vs OLD.onnx, interleaved
    python tools/bench_engines.py --json out.json   # + machine-readable results

Batch 1: median and p95 over --runs calls after --warmup. Batch 32: windows per second. Parity: max abs diff
of each backend's outputs from torch eager (CPU, fp32) on the same batch. On a GPU the CUDA rows (torch CUDA,
ORT-CUDA, TensorRT fp16) are added where each is present; host<->device copies are included in every timing,
as in the live pipeline. Exit code 0 (numbers are reported, not asserted; targets are printed beside them).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np

from edge.features.spec import default_feature_spec

log = logging.getLogger("bench_engines")

# The live feature spec's shapes (edge.features.spec.default_feature_spec: the runtime's real windows).
_SPEC = default_feature_spec()
LIVE_DIMS = dict(_SPEC.dims)
LIVE_LENS = dict(_SPEC.seq_lens)
TARGET_MS, TARGET_SPEEDUP = 0.3, 5.0
Infer = Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]


@dataclass
class Row:
    backend: str
    device: str
    b1_median_ms: float
    b1_p95_ms: float
    b32_windows_per_s: float
    parity_max_abs_diff: float


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--checkpoint", type=Path, default=None, help="checkpoint dir (default: fresh default QA-MoE)"
    )
    p.add_argument(
        "--seq-lens", default=None, help="text=T,audio=T,vision=T for a checkpoint without a feature spec"
    )
    p.add_argument("--runs", type=int, default=1000, help="timed batch-1 calls per backend (default 1000)")
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--batch", type=int, default=32, help="throughput batch size")
    p.add_argument("--batch-runs", type=int, default=50)
    p.add_argument("--threads", type=int, default=1, help="CPU threads for torch and ORT (default 1)")
    p.add_argument("--no-gpu", action="store_true", help="skip the CUDA rows even where a GPU is present")
    p.add_argument("--profile", action="store_true", help="print ORT per-op-type time shares at batch 1")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument(
        "--against", type=Path, default=None,
        help="an older ONNX export of the same model: time it against this export at batch 1 on ORT-CPU, "
        "call by call in alternation (the fair comparison on a machine whose speed drifts)",
    )
    return p.parse_args(argv)


def time_calls(fn: Callable[[], Any], runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    gc.collect()
    gc.disable()
    try:
        out = []
        for _ in range(runs):
            t0 = time.perf_counter_ns()
            fn()
            out.append((time.perf_counter_ns() - t0) / 1e6)
        return out
    finally:
        gc.enable()


def measure(
    name: str, device: str, infer: Infer, x1: Mapping, xb: Mapping, ref: Mapping, args: argparse.Namespace
) -> Row:
    lat = time_calls(lambda: infer(x1), args.runs, args.warmup)
    big = time_calls(lambda: infer(xb), args.batch_runs, max(3, args.warmup // 10))
    got = infer(xb)
    diff = max(float(np.max(np.abs(np.asarray(got[k], np.float64) - ref[k]))) for k in ref)
    row = Row(
        name,
        device,
        statistics.median(lat),
        float(np.percentile(lat, 95)),
        args.batch / (statistics.median(big) / 1e3),
        diff,
    )
    log.info("measured %s", row)
    return row


def load_model(args: argparse.Namespace) -> tuple[Any, dict[str, int], str]:
    from qamoe.config import ModelConfig
    from qamoe.models import create_model

    if args.checkpoint is None:
        import torch

        torch.manual_seed(0)
        model = create_model("qamoe", ModelConfig(input_dims=LIVE_DIMS)).eval()
        return (
            model,
            dict(LIVE_LENS),
            f"fresh qamoe, default ModelConfig, live dims {LIVE_DIMS}",
        )
    from qamoe.build.engine_config import EngineBuildConfig, parse_seq_lens, window_geometry
    from qamoe.checkpoint import load_checkpoint

    model, meta = load_checkpoint(args.checkpoint)
    lens = parse_seq_lens(args.seq_lens) if args.seq_lens else None
    seq, _, _ = window_geometry(meta, EngineBuildConfig(checkpoint=args.checkpoint, seq_lens=lens))
    return model, seq, f"checkpoint {args.checkpoint}"


def export(model: Any, seq: Mapping[str, int], path: Path) -> Path:
    from qamoe.export import export_onnx
    from qamoe.modality import parse_modality

    return export_onnx(model, path, {parse_modality(k): v for k, v in seq.items()})


def torch_infer(model: Any, device: str) -> Infer:
    import torch

    from qamoe.export import INPUT_NAMES, OUTPUT_NAMES, _Exportable

    module = _Exportable(model.to(device)).eval()

    def infer(x: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            outs = module(*(torch.from_numpy(x[n]).to(device) for n in INPUT_NAMES))
            return {n: o.cpu().numpy() for n, o in zip(OUTPUT_NAMES, outs, strict=True)}

    return infer


def ort_rows(
    path: Path, label: str, x1: Mapping, xb: Mapping, ref: Mapping, args: argparse.Namespace, gpu: bool
) -> list[Row]:
    from edge.backends.base import BackendConfig
    from edge.backends.ort import CPU, CUDA, OrtBackend

    rows = []
    with OrtBackend(path, BackendConfig(backend="ort-cpu", intra_op_threads=args.threads)) as b:
        rows.append(measure(label, "cpu", b.infer, x1, xb, ref, args))
    if gpu:
        with OrtBackend(path, BackendConfig(backend="ort-cuda"), providers=(CUDA, CPU)) as b:
            rows.append(measure(label.replace("cpu", "cuda"), "cuda", b.infer, x1, xb, ref, args))
    return rows


def trt_row(
    path: Path, seq: Mapping[str, int], x1: Mapping, xb: Mapping, ref: Mapping, args: argparse.Namespace
) -> Row:
    from edge.backends.base import BackendConfig
    from edge.backends.plan_key import PLAN_KIND
    from edge.backends.trt import TensorRTBackend
    from qamoe.build.runner import ArtifactSpec, BuildContext, record
    from qamoe.build.tensorrt_build import TrtBuildSettings, build_plan

    ctx = BuildContext(path.parent)
    shapes = {k: (1, *v.shape[1:]) for k, v in x1.items()}
    build_plan(
        path,
        path.parent / "bench.plan",
        TrtBuildSettings(max_batch=max(32, args.batch)),
        window_shapes=shapes,
        timing_cache=path.parent / "timing.cache",
    )
    from edge.backends.probe import probe_environment

    env = probe_environment()
    from edge.backends.plan_key import PlanKey

    assert env.gpu is not None and env.tensorrt_version is not None
    key = PlanKey.for_machine("0" * 64, env.tensorrt_version, env.gpu, "fp16")
    extra = {**key.to_extra(), "max_batch": max(32, args.batch), "precision": "fp16"}
    plan = record(ctx, ArtifactSpec("bench-plan", PLAN_KIND, "bench.plan", None, extra=extra))
    with TensorRTBackend(plan, ctx.engines_dir, BackendConfig(backend="trt"), env=env) as b:
        return measure("tensorrt-fp16", "cuda", b.infer, x1, xb, ref, args)


def print_table(rows: list[Row], what: str, args: argparse.Namespace) -> None:
    print(f"\nQA-MoE engines bench — {what}")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load avg "
        f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}; threads {args.threads}; batch-1 runs {args.runs}"
    )
    print(
        f"{'backend':<24}{'device':<7}{'b1 median ms':>13}{'b1 p95 ms':>11}"
        f"{f'b{args.batch} win/s':>13}{'max|diff|':>11}"
    )
    for r in rows:
        print(
            f"{r.backend:<24}{r.device:<7}{r.b1_median_ms:>13.3f}{r.b1_p95_ms:>11.3f}"
            f"{r.b32_windows_per_s:>13.0f}{r.parity_max_abs_diff:>11.1e}"
        )
    by = {r.backend: r for r in rows}
    if "torch-eager" in by and "ort-cpu" in by:
        ratio = by["torch-eager"].b1_median_ms / by["ort-cpu"].b1_median_ms
        med = by["ort-cpu"].b1_median_ms
        print(
            f"ORT-CPU vs torch eager, batch 1: {ratio:.1f}x faster (target >= {TARGET_SPEEDUP:.0f}x: "
            f"{'met' if ratio >= TARGET_SPEEDUP else 'MISSED'}); ORT-CPU median {med:.3f} ms "
            f"(target <= {TARGET_MS} ms: {'met' if med <= TARGET_MS else 'MISSED'})"
        )


def run(args: argparse.Namespace) -> list[Row]:
    import torch

    from edge.backends.probe import probe_environment
    from qamoe.export import example_inputs, torch_reference
    from qamoe.modality import parse_modality

    torch.set_num_threads(max(args.threads, 1))
    model, seq, what = load_model(args)
    dims = {parse_modality(str(m)): v for m, v in model.config.input_dims.items()}
    lens = {parse_modality(k): v for k, v in seq.items()}
    x1, xb = example_inputs(dims, lens, batch=1, seed=1), example_inputs(dims, lens, batch=args.batch, seed=2)
    ref = torch_reference(model, xb)
    env = probe_environment()
    gpu = not args.no_gpu and env.gpu is not None
    rows = [measure("torch-eager", "cpu", torch_infer(model, "cpu"), x1, xb, ref, args)]
    with tempfile.TemporaryDirectory(prefix="bench-engines-") as tmp:
        path = export(model, seq, Path(tmp) / "qamoe.onnx")
        rows += ort_rows(
            path, "ort-cpu", x1, xb, ref, args, gpu and "CUDAExecutionProvider" in env.ort_providers
        )
        if args.profile:
            profile_ort(path, x1, args)
        if args.against is not None:
            compare_exports(path, args.against, x1, args)
        if gpu and "CUDAExecutionProvider" not in env.ort_providers:
            print("(no ORT-CUDA row: this onnxruntime has no CUDA provider; onnxruntime-gpu adds it)")
        if gpu and torch.cuda.is_available():
            rows.append(measure("torch-cuda", "cuda", torch_infer(model, "cuda"), x1, xb, ref, args))
            model.to("cpu")
        elif gpu:
            print(f"(no torch-CUDA row: torch {torch.__version__} has no CUDA here)")
        if gpu and env.tensorrt_version and env.cudart:
            rows.append(trt_row(path, seq, x1, xb, ref, args))
        elif gpu:
            print(f"(no TensorRT row: {'; '.join(env.notes) or 'tensorrt/cuda-python absent'})")
    print_table(rows, what, args)
    return rows


def profile_ort(path: Path, x1: Mapping[str, np.ndarray], args: argparse.Namespace) -> None:
    """ORT's own profiler at batch 1: share of kernel time per op type, and the node count after fusion."""
    import onnxruntime as ort

    from edge.backends.base import BackendConfig
    from edge.backends.ort import session_options

    so = session_options(BackendConfig(intra_op_threads=args.threads))
    so.enable_profiling = True
    so.profile_file_prefix = str(path.parent / "ort-profile")
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    for _ in range(300):
        sess.run(None, dict(x1))
    events = json.loads(Path(sess.end_profiling()).read_text())
    per_op: dict[str, float] = {}
    nodes: set[str] = set()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_op[e["args"]["op_name"]] = per_op.get(e["args"]["op_name"], 0.0) + e["dur"]
            nodes.add(e["name"])
    total = sum(per_op.values()) or 1.0
    print(f"\nORT profile, batch 1: {len(nodes)} nodes run per call after fusion; kernel time by op type:")
    for op, dur in sorted(per_op.items(), key=lambda kv: -kv[1])[:12]:
        print(f"  {op:<24}{100 * dur / total:5.1f} %")


def compare_exports(path: Path, other: Path, x1: Mapping[str, np.ndarray], args: argparse.Namespace) -> None:
    """Batch-1 ORT-CPU latency of this export and of `other`, alternating calls (same inputs, same session
    options), so drift in the machine's speed hits both alike; plus their node counts and output agreement."""
    from edge.backends.base import BackendConfig
    from edge.backends.ort import OrtBackend

    config = BackendConfig(backend="ort-cpu", intra_op_threads=args.threads)
    with OrtBackend(path, config) as new, OrtBackend(other, config) as old:
        diff = max(
            float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b))))
            for a, b in zip(new.infer(x1).values(), old.infer(x1).values(), strict=True)
        )
        for _ in range(args.warmup):
            new.infer(x1), old.infer(x1)
        times: dict[str, list[float]] = {"this export": [], str(other): []}
        gc.collect()
        gc.disable()
        try:
            for i in range(args.runs):
                order = ((new, "this export"), (old, str(other)))
                for backend, key in order if i % 2 else order[::-1]:
                    t0 = time.perf_counter_ns()
                    backend.infer(x1)
                    times[key].append((time.perf_counter_ns() - t0) / 1e6)
        finally:
            gc.enable()
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\nORT-CPU batch 1, alternating calls ({args.runs} each), outputs agree to {diff:.1e}:")
    for key, value in med.items():
        print(f"  {key:<40}median {value:.3f} ms  p95 {np.percentile(times[key], 95):.3f} ms")
    print(f"  this export / other: {med['this export'] / med[str(other)]:.3f}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    rows = run(args)
    if args.json:
        args.json.write_text(
            json.dumps({"rows": [asdict(r) for r in rows], "argv": sys.argv[1:]}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
