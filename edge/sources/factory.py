"""One call per kind builds the source a URI needs, as jetson-utils' `videoSource::Create(uri)` does: a file
(replayed on its media clock) or a live device or stream."""

from __future__ import annotations

from edge.sources.audio import AudioSource, AudioSourceConfig
from edge.sources.audio_device import MicrophoneSource
from edge.sources.audio_file import AudioFileSource
from edge.sources.video import VideoSource, VideoSourceConfig
from edge.sources.video_device import CameraSource
from edge.sources.video_file import VideoFileSource


def open_video_source(config: VideoSourceConfig) -> VideoSource:
    """`VideoFileSource` for a file URI, else `CameraSource` (V4L2 device, rtsp/http stream). Not opened yet."""
    return VideoFileSource(config) if config.uri.is_file else CameraSource(config)


def open_audio_source(config: AudioSourceConfig) -> AudioSource:
    """`AudioFileSource` for a file URI, else `MicrophoneSource` (PortAudio). Not opened yet."""
    return AudioFileSource(config) if config.uri.is_file else MicrophoneSource(config)
