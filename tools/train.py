#!/usr/bin/env python3
"""Train one QA-MoE (or baseline) checkpoint with the Continuous Reliability Spectrum.

  python tools/train.py --data synthetic --out runs/qamoe-synthetic
  python tools/train.py --data mmsa:/data/MOSI/unaligned_50.pkl:mosi --epochs 40 --out runs/mosi
  python tools/train.py --data shards:features/ --model qamoe --out runs/live

Data sources are described in qamoe/data/sources.py. Writes a checkpoint directory (model.safetensors +
config.json with model/train configs, feature spec, validation score and git commit)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from qamoe.checkpoint import save_checkpoint
from qamoe.cli import run_main, setup_logging
from qamoe.config import ModelConfig
from qamoe.data.sources import load_source
from qamoe.errors import ConfigError
from qamoe.experiments import parse_method
from qamoe.models import create_model
from qamoe.training import SELECT_BY, TrainConfig, train_model, twin_reference

log = logging.getLogger("train")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="synthetic", help="synthetic[:SEED] | mmsa:PATH[:DATASET] | shards:DIR")
    p.add_argument("--model", default="qamoe", help="registry name, optionally NAME[key=value,...]")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's own choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--select-by", choices=SELECT_BY, help="validation MAE over every row (default) or the mean of"
                   " each source's (id prefix: mosi, mosei, ravdess, emodb, fer), so small sources count")
    p.add_argument("--train-config", type=Path, help="JSON file with TrainConfig fields (flags override it)")
    p.add_argument("--out", type=Path, required=True, help="checkpoint directory to write")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> int:
    method = parse_method(args.model)
    data, info = load_source(args.data, training=True)  # train (+ its raw twins after it) and valid only
    base = ModelConfig(input_dims=data["train"].dims)
    model = create_model(method.model, method.model_config(base))
    fields = {}
    if args.train_config:
        try:
            fields = json.loads(args.train_config.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"cannot read --train-config {args.train_config}: {e}") from None
    fields.update(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    if args.threads is not None:
        fields["threads"] = args.threads
    if args.select_by is not None:
        fields["select_by"] = args.select_by
    cfg = TrainConfig.from_dict(fields)
    train_set = data["train"]
    # raw-media twins (a corpus's train_raw, after the train rows): trained on beside their clean rows, their targets
    reference = twin_reference(train_set)
    twins = int((reference != np.arange(len(train_set))).sum())
    if twins:
        log.info("train: %d clean + %d raw-corrupted twins", len(train_set) - twins, twins)
    else:
        reference = None
    result = train_model(model, train_set, data["valid"], cfg, desc=method.label, reference=reference)
    save_checkpoint(
        args.out,
        result.model,
        model_name=method.model,
        train_config=cfg.to_dict() | {"data": args.data, "method": method.label},
        feature_spec=info.get("feature_spec"),
        metrics={"valid_score": result.best_score, "best_epoch": result.best_epoch},
    )
    print(f"saved {args.out} (best epoch {result.best_epoch}, validation score {result.best_score:.4f})")
    return 0


if __name__ == "__main__":
    ns = parse_args(sys.argv[1:])
    setup_logging(ns.verbose)
    sys.exit(run_main(lambda: main(ns), verbose=ns.verbose))
