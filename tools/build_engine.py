#!/usr/bin/env python
"""Build everything the runtime loads into engines/ and record it in engines/manifest.json.

    python tools/build_engine.py                 # every stage; up-to-date stages are skipped
    python tools/build_engine.py --only minilm   # one stage (repeatable)
    python tools/build_engine.py --check         # verify every artifact in the manifest; exit 1 on a mismatch
    python tools/build_engine.py --force         # rebuild even what is up to date

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

from edge.manifest import ManifestError  # noqa: E402
from qamoe.build.assets import ASSET_STAGES  # noqa: E402
from qamoe.build.errors import BuildError  # noqa: E402
from qamoe.build.runner import BuildContext, Stage, check, run_stages  # noqa: E402

log = logging.getLogger("build_engine")

# The model stage (QA-MoE export) is appended here when it exists; stages run in this order.
STAGES: tuple[Stage, ...] = (*ASSET_STAGES,)


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
        help=f"build only this stage (repeatable): {', '.join(s.name for s in STAGES)}",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="verify the artifacts of the manifest (with --only: those of the named stages/artifacts)",
    )
    parser.add_argument("--force", action="store_true", help="rebuild stages even when they are up to date")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging, tracebacks on errors")
    return parser.parse_args(argv)


def run_check(engines_dir: Path, only: list[str] | None) -> int:
    results = check(engines_dir, only)
    for r in results:
        if r.ok:
            log.info("ok       %s (%s)", r.name, r.path)
        for p in r.problems:
            log.error("MISMATCH %s", p)
    bad = sum(not r.ok for r in results)
    log.info("%d artifact(s) checked, %d with problems", len(results), bad)
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s"
    )
    try:
        if args.check:
            return run_check(args.engines_dir, args.only)
        outcomes = run_stages(STAGES, BuildContext(args.engines_dir, force=args.force), args.only)
        built = [o.name for o in outcomes if o.status == "built"]
        log.info("done: %s", f"built {', '.join(built)}" if built else "everything up to date, nothing built")
        return 0
    except (BuildError, ManifestError) as exc:
        log.error("%s", exc, exc_info=args.verbose)
        return getattr(exc, "exit_code", 1)


if __name__ == "__main__":
    sys.exit(main())
