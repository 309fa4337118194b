"""Source URIs: the `--camera`, `--mic` and `--video-file` strings, parsed once into small frozen values.

Camera: `0` (an index), `/dev/video2`, `clip.mp4` / `./2` / `file:///abs/clip.mp4` (a video file),
`rtsp://…`, `http(s)://…` (a stream), `none`.
Mic: `default`, a device-name substring (`pulse`, `USB`) or `name:SUBSTRING`, an index (`3`), a WAV or other
media file (`talk.wav`, `./mic`, `file:///abs/talk.wav`), `none`.
`index:N` is the explicit index form for both.

Parsing is syntax plus one look at the current directory: a bare word that is both a keyword/index/device name
and an existing file is ambiguous and raises, naming both explicit forms. Whether a device or file exists is
checked when the source opens (`SourceNotFoundError`), not here.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from edge.sources.errors import SourceUriError

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp")
MEDIA_SUFFIXES = frozenset(
    {
        ".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".wma", ".aiff", ".aif", ".au",
        ".mp4", ".m4v", ".mkv", ".webm", ".mov", ".avi", ".mpg", ".mpeg", ".ts", ".wmv", ".flv", ".3gp",
    }
)
_INDEX = re.compile(r"\d{1,3}")
_DEV_VIDEO = re.compile(r"/dev/video\d+|/dev/v4l/.+")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")


class CameraKind(enum.Enum):
    INDEX = "index"
    DEVICE = "device"
    FILE = "file"
    STREAM = "stream"
    NONE = "none"


class MicKind(enum.Enum):
    DEFAULT = "default"
    NAME = "name"
    INDEX = "index"
    FILE = "file"
    NONE = "none"


@dataclass(frozen=True)
class CameraUri:
    """A parsed `--camera`. Exactly one of index/path/url is set, according to kind (none for NONE)."""

    kind: CameraKind
    index: int | None = None
    path: Path | None = None
    url: str | None = None

    def __str__(self) -> str:
        if self.kind is CameraKind.INDEX:
            return str(self.index)
        if self.kind in (CameraKind.DEVICE, CameraKind.FILE):
            return str(self.path)
        if self.kind is CameraKind.STREAM:
            return str(self.url)
        return "none"

    @property
    def is_file(self) -> bool:
        return self.kind is CameraKind.FILE

    @property
    def is_live(self) -> bool:
        """Captured in real time by someone else (device or stream): never paced, never EOS."""
        return self.kind in (CameraKind.INDEX, CameraKind.DEVICE, CameraKind.STREAM)


@dataclass(frozen=True)
class MicUri:
    """A parsed `--mic`: `index` for INDEX, `name` (case-insensitive substring) for NAME, `path` for FILE."""

    kind: MicKind
    index: int | None = None
    name: str | None = None
    path: Path | None = None

    def __str__(self) -> str:
        if self.kind is MicKind.INDEX:
            return str(self.index)
        if self.kind is MicKind.NAME:
            return f"name:{self.name}"
        return str(self.path) if self.kind is MicKind.FILE else self.kind.value

    @property
    def is_file(self) -> bool:
        return self.kind is MicKind.FILE

    @property
    def is_live(self) -> bool:
        return self.kind in (MicKind.DEFAULT, MicKind.NAME, MicKind.INDEX)


def parse_camera(text: str) -> CameraUri:
    """Parse a `--camera` string; SourceUriError (naming the explicit form) when malformed or ambiguous."""
    s = _clean(text, "--camera")
    low = s.lower()
    if low == "none":
        _refuse_if_file(s, "--camera", "`none` runs without video")
        return CameraUri(CameraKind.NONE)
    index = _parse_index(s, "--camera")
    if index is not None:
        return CameraUri(CameraKind.INDEX, index=index)
    scheme = _SCHEME.match(s)
    if scheme:
        name = scheme.group(1).lower()
        if name == "file":
            return CameraUri(CameraKind.FILE, path=_file_url_path(s, "--camera"))
        return CameraUri(CameraKind.STREAM, url=_stream_url(s, name))
    if s.startswith("/dev/"):
        if not _DEV_VIDEO.fullmatch(s):
            raise SourceUriError(f"--camera {s!r}: not a video device; pass /dev/videoN (see --list-devices)")
        return CameraUri(CameraKind.DEVICE, path=Path(s))
    return CameraUri(CameraKind.FILE, path=Path(s).expanduser())


def parse_mic(text: str) -> MicUri:
    """Parse a `--mic` string. Raises SourceUriError (naming the explicit form) when malformed/ambiguous."""
    s = _clean(text, "--mic")
    low = s.lower()
    if low in ("none", "default"):
        _refuse_if_file(s, "--mic", f"`{low}` is the keyword")
        return MicUri(MicKind.NONE if low == "none" else MicKind.DEFAULT)
    index = _parse_index(s, "--mic")
    if index is not None:
        return MicUri(MicKind.INDEX, index=index)
    if low.startswith("name:"):
        name = s[5:].strip()
        if not name:
            raise SourceUriError("--mic 'name:' needs a device-name substring after the colon, e.g. name:USB")
        return MicUri(MicKind.NAME, name=name)
    scheme = _SCHEME.match(s)
    if scheme:
        if scheme.group(1).lower() != "file":
            raise SourceUriError(
                f"--mic {s!r}: network audio is not supported; pass a device name, an index or a media file"
            )
        return MicUri(MicKind.FILE, path=_file_url_path(s, "--mic"))
    if _looks_like_path(s):
        return MicUri(MicKind.FILE, path=Path(s).expanduser())
    if Path(s).is_file():
        raise SourceUriError(
            f"--mic {s!r} is ambiguous: both a device-name substring and a file here; "
            f"pass ./{s} for the file or name:{s} for the device"
        )
    return MicUri(MicKind.NAME, name=s)


def parse_video_file(text: str) -> tuple[CameraUri, MicUri]:
    """`--video-file clip.mp4`: both tracks of one media file, as a (camera, mic) pair of FILE URIs."""
    s = _clean(text, "--video-file")
    if s.lower() == "none" or _SCHEME.match(s) and not s.lower().startswith("file:"):
        raise SourceUriError(
            f"--video-file {s!r}: give a local media file; use --camera URL for streams, --camera/--mic none"
        )
    path = _file_url_path(s, "--video-file") if s.lower().startswith("file:") else Path(s).expanduser()
    return CameraUri(CameraKind.FILE, path=path), MicUri(MicKind.FILE, path=path)


def _clean(text: str, flag: str) -> str:
    if not isinstance(text, str):
        raise SourceUriError(f"{flag} takes a string, got {type(text).__name__}")
    s = text.strip()
    if not s:
        raise SourceUriError(f"{flag} is empty: pass a source, or `none` to run without it")
    if any(ord(c) < 32 for c in s):
        raise SourceUriError(f"{flag} {s!r} contains control characters: pass a plain path, index or URL")
    return s


def _parse_index(s: str, flag: str) -> int | None:
    """`3` or `index:3` -> 3; `-1`, `1.5`, `index:x` raise; anything else -> None (not an index)."""
    explicit = s.lower().startswith("index:")
    body = s[6:].strip() if explicit else s
    if _INDEX.fullmatch(body):
        if not explicit and Path(s).is_file():
            raise SourceUriError(
                f"{flag} {s!r} is ambiguous: both a device index and a file here; "
                f"pass ./{s} for the file or index:{s} for the device"
            )
        return int(body)
    if explicit:
        raise SourceUriError(f"{flag} {s!r}: index: takes a number 0-999, e.g. index:0")
    if re.fullmatch(r"[+-]?\d+(\.\d*)?|[+-]?\.\d+", s):
        raise SourceUriError(f"{flag} {s!r}: a device index is a whole number 0-999; for a file pass ./{s}")
    return None


def _refuse_if_file(s: str, flag: str, meaning: str) -> None:
    if Path(s).is_file():
        raise SourceUriError(
            f"{flag} {s!r} is ambiguous: {meaning}, but a file of that name is here; pass ./{s}"
        )


def _stream_url(s: str, scheme: str) -> str:
    if scheme not in STREAM_SCHEMES:
        raise SourceUriError(
            f"--camera {s!r}: unsupported scheme {scheme!r}; use one of {', '.join(STREAM_SCHEMES)} or file://"
        )
    parts = urlsplit(s)
    if not parts.hostname:
        raise SourceUriError(f"--camera {s!r}: the URL has no host; e.g. rtsp://192.168.1.20:554/stream")
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError as exc:
        raise SourceUriError(f"--camera {s!r}: bad port ({exc}); e.g. rtsp://host:554/stream") from exc
    return s


def _file_url_path(s: str, flag: str) -> Path:
    parts = urlsplit(s)
    if parts.netloc not in ("", "localhost") or not parts.path:
        raise SourceUriError(f"{flag} {s!r}: a file URL is file:///absolute/path (three slashes)")
    return Path(unquote(parts.path))


def _looks_like_path(s: str) -> bool:
    return "/" in s or s.startswith(("~", ".")) or Path(s).suffix.lower() in MEDIA_SUFFIXES
