#!/usr/bin/env python3
"""Batch-1 forward latency of QA-MoE (and the baselines) in torch eager on the CPU.

  python tools/bench_model.py                    # live-sized inputs, default config
  python tools/bench_model.py --dataset mosei    # MOSEI feature dims

Prints median / p95 per model; every model is timed in the same run, interleaved, so the ratios are fair on a
noisy machine. ONNX Runtime and TensorRT numbers: tools/bench_engines.py."""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import torch

from edge.features.spec import default_feature_spec
from qamoe.config import ModelConfig
from qamoe.export import example_inputs
from qamoe.modality import MODALITIES, Modality
from qamoe.models import create_model
from qamoe.provenance import machine

# Live feature shapes: the runtime's real windows (edge.features.spec.default_feature_spec).
_SPEC = default_feature_spec()
LIVE_SEQ = {Modality(k): v for k, v in _SPEC.seq_lens.items()}
LIVE_DIMS = {Modality(k): v for k, v in _SPEC.dims.items()}
MOSX_SEQ = {Modality.TEXT: 50, Modality.AUDIO: 50, Modality.VISION: 50}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=["live", "mosi", "mosei", "sims"], default="live")
    p.add_argument("--models", nargs="+", default=["qamoe", "early_fusion", "late_fusion"])
    p.add_argument("--runs", type=int, default=500)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.dataset == "live":
        cfg, seq = ModelConfig(input_dims=LIVE_DIMS), LIVE_SEQ
    else:
        cfg, seq = ModelConfig.for_dataset(args.dataset), MOSX_SEQ
    inputs = example_inputs(cfg.input_dims, seq, batch=1)
    feats = {m: torch.from_numpy(inputs[f"{m}_feats"]) for m in MODALITIES}
    masks = {m: torch.from_numpy(inputs[f"{m}_mask"]) for m in MODALITIES}
    models = {name: create_model(name, cfg).eval() for name in args.models}
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.inference_mode():
        for model in models.values():
            for _ in range(20):
                model(feats, masks)
        for _ in range(args.runs):
            for name, model in models.items():
                t0 = time.perf_counter()
                model(feats, masks)
                times[name].append((time.perf_counter() - t0) * 1e3)
    print(f"# torch eager CPU, batch 1, {args.dataset} shapes, {args.threads} thread(s), {args.runs} runs")
    print(f"# {machine()}")
    print(f"{'model':<16}{'params':>10}{'median ms':>12}{'p95 ms':>10}")
    for name, model in models.items():
        t = times[name]
        n = sum(p.numel() for p in model.parameters())
        print(f"{name:<16}{n:>10}{statistics.median(t):>12.3f}{np.percentile(t, 95):>10.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
