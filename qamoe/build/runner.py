"""Stages of the engine build, the runner that skips what is up to date, and the manifest check.

A stage is anything with a `name`, a `build_key()` (a digest of everything its output depends on) and a
`build(ctx)` that writes files under the engines dir and returns their manifest entries. The runner rebuilds a
stage only when its key changed or its recorded artifacts fail verification, so a second run does no work.
Asset stages come from `qamoe.build.assets.ASSET_STAGES`; the model stage appends itself to the same list.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from edge.manifest import (
    MANIFEST_NAME,
    Artifact,
    Manifest,
    Problem,
    Source,
    TensorSpec,
    directory_digest,
    load_manifest,
    scan_directory,
    sha256_file,
    verify,
    verify_artifact,
    write_manifest,
)
from qamoe.build.errors import BuildConfigError, BuildError
from qamoe.build.wheels import WheelPin, fetch_wheel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildContext:
    """Where the build writes. Everything is under `engines_dir`; nothing depends on the current directory."""

    engines_dir: Path
    force: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.engines_dir, Path):
            object.__setattr__(self, "engines_dir", Path(self.engines_dir))

    @property
    def cache_dir(self) -> Path:
        return self.engines_dir / ".cache" / "wheels"

    @property
    def manifest_path(self) -> Path:
        return self.engines_dir / MANIFEST_NAME

    def asset_path(self, rel: str) -> Path:
        return self.engines_dir / rel

    def wheel(self, pin: WheelPin) -> Path:
        return fetch_wheel(pin, self.cache_dir)


class Stage(Protocol):
    name: str

    def build_key(self) -> str: ...

    def build(self, ctx: BuildContext) -> list[Artifact]: ...


@dataclass(frozen=True)
class StageOutcome:
    name: str
    status: str  # "built" or "up to date"
    artifacts: tuple[str, ...]
    seconds: float


@dataclass(frozen=True)
class ArtifactCheck:
    name: str
    path: str
    problems: tuple[Problem, ...]
    stage: str = ""  # the build stage that writes it (what `--only` rebuilds)

    @property
    def ok(self) -> bool:
        return not self.problems


def select_stages(stages: Sequence[Stage], only: Sequence[str] | None) -> list[Stage]:
    if not only:
        return list(stages)
    known = {s.name for s in stages}
    unknown = [n for n in only if n not in known]
    if unknown:
        raise BuildConfigError(
            f"unknown stage {', '.join(unknown)}: choose from {', '.join(s.name for s in stages)}"
        )
    return [s for s in stages if s.name in only]


def is_up_to_date(stage: Stage, manifest: Manifest, root: Path) -> bool:
    current = manifest.of_stage(stage.name)
    if not current:
        return False
    key = stage.build_key()
    if any(a.build_key != key for a in current):
        return False
    return not any(verify_artifact(a, root) for a in current)


def run_stages(
    stages: Sequence[Stage], ctx: BuildContext, only: Sequence[str] | None = None
) -> list[StageOutcome]:
    """Build every selected stage that is not up to date; the manifest is rewritten after each built stage."""
    manifest = load_manifest(ctx.manifest_path, missing_ok=True)
    outcomes = []
    for stage in select_stages(stages, only):
        start = time.perf_counter()
        if not ctx.force and is_up_to_date(stage, manifest, ctx.engines_dir):
            names = tuple(a.name for a in manifest.of_stage(stage.name))
            log.info("%s: up to date (%s), nothing to do", stage.name, ", ".join(names))
            outcomes.append(StageOutcome(stage.name, "up to date", names, time.perf_counter() - start))
            continue
        log.info("%s: building", stage.name)
        key = stage.build_key()
        artifacts = [dataclasses.replace(a, stage=stage.name, build_key=key) for a in stage.build(ctx)]
        problems = [p for a in artifacts for p in verify_artifact(a, ctx.engines_dir)]
        if problems:
            raise BuildError(f"{stage.name}: freshly built artifacts fail verification: {problems[0]}")
        manifest = manifest.with_stage(stage.name, artifacts)
        write_manifest(manifest, ctx.manifest_path)
        seconds = time.perf_counter() - start
        log.info("%s: built %s in %.1f s", stage.name, ", ".join(a.name for a in artifacts), seconds)
        outcomes.append(StageOutcome(stage.name, "built", tuple(a.name for a in artifacts), seconds))
    return outcomes


def check(engines_dir: Path, names: Sequence[str] | None = None) -> list[ArtifactCheck]:
    """Verify the artifacts of the manifest (all, or those named / of the stages named)."""
    manifest = load_manifest(Path(engines_dir) / MANIFEST_NAME)
    chosen = manifest.artifacts
    if names:
        chosen = tuple(a for a in manifest.artifacts if a.name in names or a.stage in names)
        if not chosen:
            raise BuildConfigError(
                f"nothing named {', '.join(names)} in the manifest "
                f"(artifacts: {', '.join(manifest.names()) or 'none'})"
            )
    sub = dataclasses.replace(manifest, artifacts=chosen)
    problems = verify(sub, engines_dir)
    return [ArtifactCheck(a.name, a.path, tuple(p for p in problems if p.artifact == a.name), a.stage)
            for a in chosen]


# ---------------------------------------------------------------- helpers for stages
@dataclass(frozen=True)
class ArtifactSpec:
    """What a stage knows about one output before it is hashed."""

    name: str
    kind: str
    path: str  # relative to the engines dir
    source: Source | None = None
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)


def record(ctx: BuildContext, spec: ArtifactSpec) -> Artifact:
    """Hash the file or directory at `spec.path` into its manifest entry (the runner sets stage and key)."""
    target = ctx.asset_path(spec.path)
    common = {
        "name": spec.name,
        "kind": spec.kind,
        "path": spec.path,
        "stage": "",
        "source": spec.source,
        "inputs": spec.inputs,
        "outputs": spec.outputs,
        "extra": dict(spec.extra),
    }
    if target.is_dir():
        files = scan_directory(target)
        return Artifact(
            sha256=directory_digest(files), size=sum(f.size for f in files), files=files, **common
        )
    return Artifact(sha256=sha256_file(target), size=target.stat().st_size, **common)


_ORT_DTYPES = {
    "float": "float32",
    "double": "float64",
    "float16": "float16",
    "int64": "int64",
    "int32": "int32",
    "uint8": "uint8",
    "bool": "bool",
}


def onnx_io(path: Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """The named inputs and outputs of an ONNX file as onnxruntime sees them."""
    import onnxruntime as ort  # build-time only; the runtime imports it itself where it needs it

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def spec(arg: Any) -> TensorSpec:
        dtype = str(arg.type).removeprefix("tensor(").removesuffix(")")
        dtype = _ORT_DTYPES.get(dtype, dtype)
        return TensorSpec(arg.name, dtype, tuple(d if isinstance(d, int) else str(d) for d in arg.shape))

    return tuple(spec(i) for i in sess.get_inputs()), tuple(spec(o) for o in sess.get_outputs())
