"""Finding built artifacts at run time, and refusing any whose bytes do not match the manifest.

Standard library only. The engines directory is never resolved against the current directory: it is an
explicit argument, the `QAMOE_ENGINES_DIR` environment variable, or `engines/` beside the installed source
tree.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from edge.manifest import MANIFEST_NAME, Artifact, ManifestError, load_manifest, verify_artifact

log = logging.getLogger(__name__)

ENGINES_ENV = "QAMOE_ENGINES_DIR"


class AssetError(ManifestError):
    """An artifact the runtime needs is missing or does not match the manifest."""


def default_engines_dir() -> Path:
    """`$QAMOE_ENGINES_DIR` if set, else `engines/` at the root of the source tree this package lives in."""
    env = os.environ.get(ENGINES_ENV)
    if env:
        return Path(env).expanduser().resolve()
    return Path(__file__).resolve().parents[1] / "engines"


def resolve_artifact(
    name: str, engines_dir: str | os.PathLike[str] | None = None, *, verify: bool = True
) -> tuple[Artifact, Path]:
    """The manifest entry of `name` and its absolute path, after checking its sha256 (unless `verify` is off).

    Raises AssetError naming the fix when the artifact is missing or altered.
    """
    root = Path(engines_dir) if engines_dir is not None else default_engines_dir()
    manifest = load_manifest(root / MANIFEST_NAME)
    artifact = manifest.get(name)
    if verify:
        problems = verify_artifact(artifact, root)
        if problems:
            detail = "; ".join(str(p) for p in problems[:3])
            raise AssetError(
                f"artifact {name!r} does not match the manifest ({detail}): "
                "rebuild it with `python tools/build_engine.py`"
            )
    log.debug("artifact %s -> %s", name, root / artifact.path)
    return artifact, root / artifact.path
