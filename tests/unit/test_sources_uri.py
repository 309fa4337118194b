"""Source URI parsing: one table for --camera, one for --mic, plus --video-file and the ambiguity rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.sources import (
    CameraKind,
    MicKind,
    SourceUriError,
    parse_camera,
    parse_mic,
    parse_video_file,
)

CAMERA_OK = [
    ("0", CameraKind.INDEX, 0),
    (" 2 ", CameraKind.INDEX, 2),
    ("index:3", CameraKind.INDEX, 3),
    ("/dev/video2", CameraKind.DEVICE, "/dev/video2"),
    ("/dev/v4l/by-id/usb-cam-video-index0", CameraKind.DEVICE, "/dev/v4l/by-id/usb-cam-video-index0"),
    ("clip.mp4", CameraKind.FILE, "clip.mp4"),
    ("./2", CameraKind.FILE, "2"),
    ("dir/My Clip.MKV", CameraKind.FILE, "dir/My Clip.MKV"),
    ("file:///data/clip%20one.mp4", CameraKind.FILE, "/data/clip one.mp4"),
    ("rtsp://192.168.1.20:554/stream1", CameraKind.STREAM, "rtsp://192.168.1.20:554/stream1"),
    ("http://cam.local/video.mjpg", CameraKind.STREAM, "http://cam.local/video.mjpg"),
    ("HTTPS://cam.local:8443/live", CameraKind.STREAM, "HTTPS://cam.local:8443/live"),
    ("none", CameraKind.NONE, None),
    ("NONE", CameraKind.NONE, None),
]

CAMERA_BAD = [
    ("", "empty"),
    ("   ", "empty"),
    ("-1", "whole number"),
    ("1.5", "whole number"),
    ("index:", "index: takes"),
    ("index:cam", "index: takes"),
    ("ftp://host/clip.mp4", "unsupported scheme"),
    ("rtsp://", "no host"),
    ("rtsp://host:99999/x", "bad port"),
    ("file://server/share/clip.mp4", "three slashes"),
    ("/dev/null", "not a video device"),
    ("clip\x00.mp4", "control characters"),
]

MIC_OK = [
    ("default", MicKind.DEFAULT, None),
    ("Default", MicKind.DEFAULT, None),
    ("none", MicKind.NONE, None),
    ("3", MicKind.INDEX, 3),
    ("index:12", MicKind.INDEX, 12),
    ("pulse", MicKind.NAME, "pulse"),
    ("USB Audio", MicKind.NAME, "USB Audio"),
    ("name:default", MicKind.NAME, "default"),
    ("talk.wav", MicKind.FILE, "talk.wav"),
    ("speech.FLAC", MicKind.FILE, "speech.FLAC"),
    ("./mic", MicKind.FILE, "mic"),
    ("~/talk.mp3", MicKind.FILE, str(Path("~/talk.mp3").expanduser())),
    ("file:///tmp/talk.wav", MicKind.FILE, "/tmp/talk.wav"),
]

MIC_BAD = [
    ("", "empty"),
    ("-2", "whole number"),
    ("2.0", "whole number"),
    ("name:", "substring"),
    ("http://host/audio", "network audio"),
]


def _value(uri: object) -> object:
    for attr in ("index", "path", "url", "name"):
        value = getattr(uri, attr, None)
        if value is not None:
            return value if not isinstance(value, Path) else str(value)
    return None


@pytest.mark.parametrize(("text", "kind", "value"), CAMERA_OK)
def test_camera_uris_parse(text: str, kind: CameraKind, value: object) -> None:
    uri = parse_camera(text)
    assert uri.kind is kind
    assert _value(uri) == value


@pytest.mark.parametrize(("text", "why"), CAMERA_BAD)
def test_bad_camera_uris_raise_with_the_fix(text: str, why: str) -> None:
    with pytest.raises(SourceUriError, match=why):
        parse_camera(text)


@pytest.mark.parametrize(("text", "kind", "value"), MIC_OK)
def test_mic_uris_parse(text: str, kind: MicKind, value: object) -> None:
    uri = parse_mic(text)
    assert uri.kind is kind
    assert _value(uri) == value


@pytest.mark.parametrize(("text", "why"), MIC_BAD)
def test_bad_mic_uris_raise_with_the_fix(text: str, why: str) -> None:
    with pytest.raises(SourceUriError, match=why):
        parse_mic(text)


def test_a_number_that_is_also_a_file_is_ambiguous_and_names_both_forms(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "2").write_bytes(b"x")
    (tmp_path / "pulse").write_bytes(b"x")
    (tmp_path / "none").write_bytes(b"x")
    with pytest.raises(SourceUriError, match=r"ambiguous.*\./2.*index:2"):
        parse_camera("2")
    with pytest.raises(SourceUriError, match=r"ambiguous.*\./2.*index:2"):
        parse_mic("2")
    with pytest.raises(SourceUriError, match=r"ambiguous.*\./pulse.*name:pulse"):
        parse_mic("pulse")
    with pytest.raises(SourceUriError, match=r"ambiguous.*\./none"):
        parse_camera("none")
    # the explicit forms resolve it
    assert parse_camera("./2").kind is CameraKind.FILE
    assert parse_camera("index:2").index == 2
    assert parse_mic("name:pulse").name == "pulse"


def test_video_file_gives_both_tracks_of_one_file() -> None:
    camera, mic = parse_video_file("clip.mp4")
    assert camera.kind is CameraKind.FILE and mic.kind is MicKind.FILE
    assert camera.path == mic.path == Path("clip.mp4")
    for bad in ("none", "rtsp://host/x", ""):
        with pytest.raises(SourceUriError):
            parse_video_file(bad)


def test_uris_are_frozen_values_that_print_back() -> None:
    uri = parse_camera("/dev/video0")
    assert str(uri) == "/dev/video0" and str(parse_mic("3")) == "3" and str(parse_mic("none")) == "none"
    assert parse_camera("0") == parse_camera("index:0")
    with pytest.raises(AttributeError):
        uri.kind = CameraKind.NONE  # type: ignore[misc]
