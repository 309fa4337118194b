"""`engines/manifest.json`: the record of every built artifact, and the check that each is what it claims.

The runtime meets models only through artifacts; this module is how it knows which file is which and refuses
one whose bytes do not match the recorded sha256. Standard library only, besides `edge.errors` which is too
(it is imported by the runtime and by the build tools alike).

Layout (schema version 1)::

    {"schema_version": 1,
     "artifacts": [{"name", "kind", "path", "sha256", "size", "stage", "build_key",
                    "source": {"package", "version", "wheel", "wheel_sha256", "licence", "members"} | null,
                    "io": {"inputs": [{"name", "dtype", "shape"}], "outputs": [...]},
                    "files": [{"path", "sha256", "size"}],        # directories only
                    "extra": {...}}],
     ...other top-level sections (e.g. a feature spec) are kept as they are}

`path` is relative to the engines directory. A file artifact's `sha256` is the file's; a directory artifact
lists each file (paths relative to the directory) and its `sha256` is `directory_digest(files)`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edge.errors import ModelFault

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
# A corrupt manifest cannot be updated in place: the build tool refuses to guess what it held.
REBUILD_FROM_SCRATCH = (
    "delete it and run `python tools/build_engine.py` (add `--checkpoint DIR` to rebuild the model too)"
)
_CHUNK = 1 << 20


class ManifestError(ModelFault):
    """The manifest is missing, malformed, of another schema version, or names an unknown artifact (exit 4)."""


@dataclass(frozen=True)
class TensorSpec:
    """One named input or output of a model: dtype as numpy spells it, shape with names for dynamic axes."""

    name: str
    dtype: str
    shape: tuple[int | str, ...]


@dataclass(frozen=True)
class Source:
    """Where an artifact's bytes came from: a pinned wheel and the members taken from it."""

    package: str
    version: str
    wheel: str
    wheel_sha256: str
    licence: str
    members: tuple[str, ...] = ()


@dataclass(frozen=True)
class FileEntry:
    """One file of a directory artifact, `path` relative to the artifact's directory."""

    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Artifact:
    name: str
    kind: str
    path: str
    sha256: str
    size: int
    stage: str
    build_key: str = ""
    source: Source | None = None
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    files: tuple[FileEntry, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or not self.path:
            raise ManifestError("an artifact needs a name and a path")
        if Path(self.path).is_absolute() or ".." in Path(self.path).parts:
            raise ManifestError(
                f"artifact {self.name!r}: path {self.path!r} must be relative to the engines dir"
            )
        if len(self.sha256) != 64:
            raise ManifestError(f"artifact {self.name!r}: sha256 must be 64 hex digits")


@dataclass(frozen=True)
class Manifest:
    schema_version: int = SCHEMA_VERSION
    artifacts: tuple[Artifact, ...] = ()
    sections: Mapping[str, Any] = field(default_factory=dict)

    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.artifacts)

    def get(self, name: str) -> Artifact:
        for artifact in self.artifacts:
            if artifact.name == name:
                return artifact
        known = ", ".join(self.names()) or "none"
        raise ManifestError(
            f"no artifact {name!r} in the manifest (known: {known}); run `python tools/build_engine.py`"
        )

    def of_stage(self, stage: str) -> tuple[Artifact, ...]:
        return tuple(a for a in self.artifacts if a.stage == stage)

    def with_stage(self, stage: str, artifacts: Iterable[Artifact]) -> Manifest:
        """A copy where the artifacts of `stage` are replaced by `artifacts` (others kept, order stable)."""
        new = tuple(artifacts)
        clash = {a.name for a in new} & {a.name for a in self.artifacts if a.stage != stage}
        if clash:
            raise ManifestError(
                f"stage {stage!r} would overwrite artifacts of another stage: {sorted(clash)}"
            )
        kept = tuple(a for a in self.artifacts if a.stage != stage)
        return replace(self, artifacts=kept + new)


@dataclass(frozen=True)
class Problem:
    """One reason an artifact cannot be trusted."""

    artifact: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.artifact}: {self.path}: {self.message}"


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def directory_digest(files: Iterable[FileEntry]) -> str:
    """A stable digest of a directory's contents: sha256 over sorted "sha256  path" lines."""
    lines = sorted(f"{f.sha256}  {f.path}\n" for f in files)
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def scan_directory(directory: Path) -> tuple[FileEntry, ...]:
    """Every regular file under `directory` (recursively), hashed, sorted by path."""
    entries = [
        FileEntry(p.relative_to(directory).as_posix(), sha256_file(p), p.stat().st_size)
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    ]
    return tuple(entries)


# ---------------------------------------------------------------- JSON (de)serialisation
def _tensor_to_json(t: TensorSpec) -> dict[str, Any]:
    return {"name": t.name, "dtype": t.dtype, "shape": list(t.shape)}


def _tensor_from_json(d: Mapping[str, Any]) -> TensorSpec:
    _reject_unknown(d, {"name", "dtype", "shape"}, "tensor")
    return TensorSpec(str(d["name"]), str(d["dtype"]), tuple(d["shape"]))


def _source_from_json(d: Mapping[str, Any] | None) -> Source | None:
    if d is None:
        return None
    _reject_unknown(d, {"package", "version", "wheel", "wheel_sha256", "licence", "members"}, "source")
    return Source(**{**d, "members": tuple(d.get("members", ()))})


def artifact_to_json(a: Artifact) -> dict[str, Any]:
    source = None
    if a.source is not None:
        source = {**a.source.__dict__, "members": list(a.source.members)}
    return {
        "name": a.name,
        "kind": a.kind,
        "path": a.path,
        "sha256": a.sha256,
        "size": a.size,
        "stage": a.stage,
        "build_key": a.build_key,
        "source": source,
        "io": {
            "inputs": [_tensor_to_json(t) for t in a.inputs],
            "outputs": [_tensor_to_json(t) for t in a.outputs],
        },
        "files": [f.__dict__ for f in a.files],
        "extra": dict(a.extra),
    }


_ARTIFACT_KEYS = {
    "name",
    "kind",
    "path",
    "sha256",
    "size",
    "stage",
    "build_key",
    "source",
    "io",
    "files",
    "extra",
}


def artifact_from_json(d: Mapping[str, Any]) -> Artifact:
    _reject_unknown(d, _ARTIFACT_KEYS, f"artifact {d.get('name')!r}")
    io = d.get("io") or {}
    return Artifact(
        name=str(d["name"]),
        kind=str(d["kind"]),
        path=str(d["path"]),
        sha256=str(d["sha256"]),
        size=int(d["size"]),
        stage=str(d["stage"]),
        build_key=str(d.get("build_key", "")),
        source=_source_from_json(d.get("source")),
        inputs=tuple(_tensor_from_json(t) for t in io.get("inputs", ())),
        outputs=tuple(_tensor_from_json(t) for t in io.get("outputs", ())),
        files=tuple(FileEntry(str(f["path"]), str(f["sha256"]), int(f["size"])) for f in d.get("files", ())),
        extra=dict(d.get("extra") or {}),
    )


def _reject_unknown(d: Mapping[str, Any], allowed: set[str], what: str) -> None:
    unknown = set(d) - allowed
    if unknown:
        raise ManifestError(f"{what}: unknown keys {sorted(unknown)} (allowed: {sorted(allowed)})")


def manifest_to_json(m: Manifest) -> dict[str, Any]:
    return {
        **dict(m.sections),
        "schema_version": m.schema_version,
        "artifacts": [artifact_to_json(a) for a in m.artifacts],
    }


def manifest_from_json(d: Mapping[str, Any]) -> Manifest:
    version = d.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ManifestError(
            f"manifest schema version {version!r} is not {SCHEMA_VERSION}: "
            "rebuild with `python tools/build_engine.py`"
        )
    try:
        artifacts = tuple(artifact_from_json(a) for a in d.get("artifacts", ()))
    except (KeyError, TypeError, ValueError) as exc:
        raise ManifestError(
            f"malformed artifact entry in the manifest ({exc!r}): {REBUILD_FROM_SCRATCH}"
        ) from exc
    names = [a.name for a in artifacts]
    if len(set(names)) != len(names):
        raise ManifestError(f"duplicate artifact names in the manifest: {names}")
    sections = {k: v for k, v in d.items() if k not in ("schema_version", "artifacts")}
    return Manifest(SCHEMA_VERSION, artifacts, sections)


def load_manifest(path: str | os.PathLike[str], *, missing_ok: bool = False) -> Manifest:
    """Read a manifest; with `missing_ok`, a missing file is an empty manifest."""
    path = Path(path)
    if not path.is_file():
        if missing_ok:
            return Manifest()
        raise ManifestError(f"no manifest at {path}: run `python tools/build_engine.py`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ManifestError(f"cannot read the manifest {path}: {exc}") from exc
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError: truncated or overwritten
        raise ManifestError(f"the manifest {path} is corrupt ({exc}): {REBUILD_FROM_SCRATCH}") from exc
    if not isinstance(data, dict):
        raise ManifestError(f"the manifest {path} is not a JSON object: {REBUILD_FROM_SCRATCH}")
    return manifest_from_json(data)


def write_manifest(manifest: Manifest, path: str | os.PathLike[str]) -> None:
    """Write atomically: a reader sees the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(manifest_to_json(manifest), indent=2, sort_keys=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=".manifest-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the manifest is an ordinary readable file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------- verification
def verify_artifact(artifact: Artifact, root: str | os.PathLike[str]) -> list[Problem]:
    """Problems with one artifact under the engines dir `root` (empty when it is exactly as recorded)."""
    target = Path(root) / artifact.path
    if artifact.files:
        return _verify_directory(artifact, target)
    if not target.is_file():
        return [Problem(artifact.name, artifact.path, "missing")]
    size = target.stat().st_size
    if size != artifact.size:
        return [Problem(artifact.name, artifact.path, f"size {size} != recorded {artifact.size}")]
    actual = sha256_file(target)
    if actual != artifact.sha256:
        return [
            Problem(
                artifact.name, artifact.path, f"sha256 {actual[:16]}... != recorded {artifact.sha256[:16]}..."
            )
        ]
    return []


def _verify_directory(artifact: Artifact, directory: Path) -> list[Problem]:
    if not directory.is_dir():
        return [Problem(artifact.name, artifact.path, "missing directory")]
    problems = []
    for entry in artifact.files:
        rel = f"{artifact.path}/{entry.path}"
        file = directory / entry.path
        if not file.is_file():
            problems.append(Problem(artifact.name, rel, "missing"))
        elif file.stat().st_size != entry.size:
            problems.append(
                Problem(artifact.name, rel, f"size {file.stat().st_size} != recorded {entry.size}")
            )
        elif sha256_file(file) != entry.sha256:
            problems.append(Problem(artifact.name, rel, "sha256 does not match the recorded one"))
    recorded = {e.path for e in artifact.files}
    for file in sorted(directory.rglob("*")):
        if file.is_file() and file.relative_to(directory).as_posix() not in recorded:
            problems.append(
                Problem(
                    artifact.name,
                    f"{artifact.path}/{file.relative_to(directory).as_posix()}",
                    "not recorded in the manifest",
                )
            )
    if directory_digest(artifact.files) != artifact.sha256:
        problems.append(
            Problem(artifact.name, artifact.path, "recorded directory digest does not match its files")
        )
    return problems


def verify(manifest: Manifest, root: str | os.PathLike[str]) -> list[Problem]:
    """Every problem with every artifact of `manifest` under the engines dir `root`."""
    problems: list[Problem] = []
    for artifact in manifest.artifacts:
        problems.extend(verify_artifact(artifact, root))
    return problems
