"""Capture sources: cameras, microphones, media files and streams, parsed from URIs, read with timeouts and a
status, and run on thin workers that reconnect with backoff. No torch, no qamoe: numpy, OpenCV, sounddevice
and PyAV only. `open_video_source(config)` / `open_audio_source(config)` build the implementation the URI
needs (`CameraSource` or `VideoFileSource`; `MicrophoneSource` or `AudioFileSource`).

    cam, mic = parse_camera("0"), parse_mic("default")
    video = VideoWorker(open_video_source(VideoSourceConfig(cam)))
    video.start(); frame = video.get(timeout_s=0.5); video.stop(); video.join(2.0)
"""

from edge.sources.audio import AudioSource, AudioSourceConfig, AudioSourceStats
from edge.sources.audio_device import MicrophoneSource
from edge.sources.audio_file import AudioFileSource
from edge.sources.buffers import AudioRing, LatestSlot
from edge.sources.devices import AudioInputInfo, CameraInfo, DeviceList, list_devices
from edge.sources.errors import (
    SourceBackendError,
    SourceConfigError,
    SourceError,
    SourceNotFoundError,
    SourceOpenError,
    SourceUriError,
)
from edge.sources.factory import open_audio_source, open_video_source
from edge.sources.replay import ReplayConfig
from edge.sources.types import SAMPLE_RATE, AudioChunk, ReadStatus, VideoFrame
from edge.sources.uri import CameraKind, CameraUri, MicKind, MicUri, parse_camera, parse_mic, parse_video_file
from edge.sources.video import VideoSource, VideoSourceConfig, VideoSourceStats
from edge.sources.video_device import CameraSource
from edge.sources.video_file import VideoFileSource
from edge.sources.worker import AudioWorker, Backoff, ModalityState, VideoWorker, WorkerConfig, WorkerStats

__all__ = [
    "SAMPLE_RATE",
    "AudioChunk",
    "AudioFileSource",
    "AudioInputInfo",
    "AudioRing",
    "AudioSource",
    "AudioSourceConfig",
    "AudioSourceStats",
    "AudioWorker",
    "Backoff",
    "CameraInfo",
    "CameraKind",
    "CameraSource",
    "CameraUri",
    "DeviceList",
    "LatestSlot",
    "MicKind",
    "MicUri",
    "MicrophoneSource",
    "ModalityState",
    "ReadStatus",
    "ReplayConfig",
    "SourceBackendError",
    "SourceConfigError",
    "SourceError",
    "SourceNotFoundError",
    "SourceOpenError",
    "SourceUriError",
    "VideoFileSource",
    "VideoFrame",
    "VideoSource",
    "VideoSourceConfig",
    "VideoSourceStats",
    "VideoWorker",
    "WorkerConfig",
    "WorkerStats",
    "list_devices",
    "open_audio_source",
    "open_video_source",
    "parse_camera",
    "parse_mic",
    "parse_video_file",
]  # fmt: skip
