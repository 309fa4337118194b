"""What capture devices exist: `list_devices()` for `--list-devices`, and the resolution of a `--mic` to a
PortAudio device index (with a one-line `SourceNotFoundError` listing what exists when it does not).

Cameras are found without opening them: on Linux the `/dev/video*` nodes and their sysfs names (an index N is
`/dev/videoN`), so listing never hangs on a busy or broken camera. `probe=True` additionally opens each one
with OpenCV on a helper thread with a deadline; elsewhere (no /dev) indices 0-9 are probed that way.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from edge.sources.errors import SourceBackendError, SourceError, SourceNotFoundError
from edge.sources.uri import MicKind, MicUri

logger = logging.getLogger(__name__)

PROBE_INDICES = range(10)
SYSFS_V4L = Path("/sys/class/video4linux")


@dataclass(frozen=True)
class CameraInfo:
    path: str  # /dev/videoN, or the index as text where there is no /dev
    index: int | None
    name: str
    capture: bool | None  # None: unknown (not probed); False: e.g. a UVC metadata node


@dataclass(frozen=True)
class AudioInputInfo:
    index: int
    name: str
    hostapi: str
    channels: int
    default_samplerate: float
    is_default: bool


@dataclass(frozen=True)
class DeviceList:
    cameras: tuple[CameraInfo, ...]
    audio_inputs: tuple[AudioInputInfo, ...]
    audio_error: str | None = None  # why audio inputs could not be listed (e.g. PortAudio missing)

    def describe(self) -> str:
        """A few human-readable lines (for `--list-devices`)."""
        lines = ["cameras:"] + [f"  {c.path}  {c.name}" for c in self.cameras]
        if not self.cameras:
            lines.append("  (none found)")
        lines.append("audio inputs:")
        for a in self.audio_inputs:
            star = " (default)" if a.is_default else ""
            lines.append(
                f"  {a.index}  {a.name}  [{a.hostapi}, {a.channels} ch, {a.default_samplerate:g} Hz]{star}"
            )
        if not self.audio_inputs:
            lines.append(f"  (none found{': ' + self.audio_error if self.audio_error else ''})")
        return "\n".join(lines)


def list_devices(probe: bool = False, probe_timeout_s: float = 2.0) -> DeviceList:
    """Cameras and audio inputs on this machine. Never raises for a missing backend: it says so instead."""
    cameras = list_cameras(probe=probe, probe_timeout_s=probe_timeout_s)
    try:
        inputs = list_audio_inputs()
        error = None
    except SourceError as exc:
        inputs, error = [], str(exc)
    return DeviceList(tuple(cameras), tuple(inputs), error)


def list_cameras(probe: bool = False, probe_timeout_s: float = 2.0) -> list[CameraInfo]:
    nodes = sorted(glob.glob("/dev/video*"), key=_node_number)
    if not nodes and not os.path.isdir("/dev"):  # not Linux: the only way is to try indices
        return [CameraInfo(str(i), i, "camera", True) for i in PROBE_INDICES if _probe(i, probe_timeout_s)]
    cameras = []
    for node in nodes:
        number = _node_number(node)
        name = _sysfs(node, "name") or "video device"
        capture = _probe(node, probe_timeout_s) if probe else None
        cameras.append(CameraInfo(node, number if number >= 0 else None, name, capture))
    return cameras


def _node_number(node: str) -> int:
    m = re.fullmatch(r"/dev/video(\d+)", node)
    return int(m.group(1)) if m else -1


def _sysfs(node: str, attr: str) -> str | None:
    try:
        return (SYSFS_V4L / Path(node).name / attr).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def _probe(target: int | str, timeout_s: float) -> bool:
    """Open and read one frame on a daemon thread; False if that fails or takes longer than timeout_s (a hung
    driver leaves that one daemon thread behind rather than hanging the caller)."""
    result: list[bool] = []

    def run() -> None:
        import cv2

        cap = cv2.VideoCapture(target)
        try:
            result.append(bool(cap.isOpened() and cap.read()[0]))
        finally:
            cap.release()

    thread = threading.Thread(target=run, name=f"probe-camera-{target}", daemon=True)
    thread.start()
    thread.join(timeout_s)
    return bool(result and result[0])


def import_sounddevice() -> ModuleType:
    """sounddevice, or a SourceBackendError that says how to get PortAudio."""
    try:
        import sounddevice
    except OSError as exc:  # the Python package is there but libportaudio is not
        raise SourceBackendError(
            f"PortAudio not found ({exc}): install it (Debian/Ubuntu: apt-get install libportaudio2) "
            "or run with --mic none / a media file"
        ) from exc
    except ImportError as exc:
        raise SourceBackendError("sounddevice is not installed: pip install sounddevice") from exc
    return sounddevice


def list_audio_inputs() -> list[AudioInputInfo]:
    sd = import_sounddevice()
    try:
        devices = sd.query_devices()
        hostapis = sd.query_hostapis()
        default_in = sd.default.device[0]
    except sd.PortAudioError as exc:
        raise SourceError(f"cannot list audio devices: {exc}") from exc
    if default_in is None or default_in < 0:
        default_in = next((h["default_input_device"] for h in hostapis if h["default_input_device"] >= 0), -1)
    return [
        AudioInputInfo(
            index=i,
            name=d["name"],
            hostapi=hostapis[d["hostapi"]]["name"],
            channels=int(d["max_input_channels"]),
            default_samplerate=float(d["default_samplerate"]),
            is_default=i == default_in,
        )
        for i, d in enumerate(devices)
        if d["max_input_channels"] > 0
    ]


def resolve_mic(uri: MicUri) -> AudioInputInfo:
    """The input device a DEFAULT/NAME/INDEX `--mic` means, or SourceNotFoundError naming what exists."""
    inputs = list_audio_inputs()
    if uri.kind is MicKind.DEFAULT:
        found = [a for a in inputs if a.is_default] or inputs[:1]
    elif uri.kind is MicKind.INDEX:
        found = [a for a in inputs if a.index == uri.index]
    elif uri.kind is MicKind.NAME:
        assert uri.name is not None
        exact = [a for a in inputs if a.name.lower() == uri.name.lower()]
        found = exact or [a for a in inputs if uri.name.lower() in a.name.lower()]
        if len(found) > 1:
            names = ", ".join(f"{a.index} {a.name!r}" for a in found)
            raise SourceNotFoundError(
                f"--mic {uri.name!r} matches several inputs ({names}): "
                f"pass one index, e.g. --mic {found[0].index}"
            )
    else:
        raise SourceError(f"--mic {uri} is not a device (files are opened by AudioSource)")
    if not found:
        raise SourceNotFoundError(f"no audio input {_describe_mic(uri)}; {audio_inputs_hint(inputs)}")
    return found[0]


def _describe_mic(uri: MicUri) -> str:
    return {MicKind.DEFAULT: "(no default input)", MicKind.INDEX: f"with index {uri.index}"}.get(
        uri.kind, f"named like {uri.name!r}"
    )


def audio_inputs_hint(inputs: list[AudioInputInfo] | None = None) -> str:
    """'inputs here: 0 'pulse', 1 'default'; pass one of them or --mic none to run without audio'."""
    if inputs is None:
        try:
            inputs = list_audio_inputs()
        except SourceError as exc:
            return (
                f"audio inputs cannot be listed ({exc}); pass a media file or --mic none to run without audio"
            )
    have = ", ".join(f"{a.index} {a.name!r}" for a in inputs) or "none"
    return f"inputs here: {have}; pass one of them, a media file, or --mic none to run without audio"


def cameras_hint() -> str:
    """'cameras here: /dev/video0 (Integrated Camera); pass one of them, ... or --camera none ...'."""
    have = ", ".join(f"{c.path} ({c.name})" for c in list_cameras()) or "none"
    return (
        f"cameras here: {have}; pass one of them, a video file or an rtsp:// URL, "
        "or --camera none to run without video"
    )


def rescan_audio() -> None:
    """Make PortAudio enumerate devices again (it does so only at initialisation), so that a device that
    appeared after start-up (a re-plugged USB mic, a restarted PulseAudio) can be found. sounddevice documents
    `_terminate()`/`_initialize()` as the way; only call it with no stream open."""
    sd = import_sounddevice()
    try:
        sd._terminate()
        sd._initialize()
    except sd.PortAudioError as exc:
        logger.warning("audio device rescan failed: %s", exc)
