"""An audio file (`--mic talk.wav`), read as mono float32 at 16 kHz.

WAV or any media FFmpeg reads, e.g. the audio track of an MPEG: decoded lazily with PyAV, resampled to 16 kHz
mono, and replayed on the media clock (real time or fast; see `edge.sources.replay`). Supported: any sample
format FFmpeg decodes (8/16/24/32-bit integer, float, double), 8-384 kHz, 1-8 channels (mixed down). Refused at
open, with the conversion to run: a lower rate (below telephone band, speech is not intelligible to the ASR), more
channels (no standard layout to mix down), or a file whose first audio frame does not decode (truncated, corrupt,
or empty).

Built by `open_audio_source(config)` (`edge.sources.factory`) for a file URI (see `edge.sources.audio`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np

from edge.pyav import mono_resampler
from edge.sources.audio import AudioSource, AudioSourceConfig, frames_to_mono
from edge.sources.devices import audio_inputs_hint
from edge.sources.errors import SourceBackendError, SourceNotFoundError, SourceOpenError
from edge.sources.replay import ReplayClock
from edge.sources.types import SAMPLE_RATE, AudioChunk, ReadStatus, samples_to_ns

logger = logging.getLogger(__name__)

FILE_RATES_HZ = (8_000, 384_000)  # sample rates a file may have (resampled to 16 kHz)
FILE_MAX_CHANNELS = 8  # up to 7.1; mixed down to mono


def _check_file_format(path: object, codec: Any) -> None:
    """Refuse (SourceOpenError naming the conversion) a rate or channel count outside what files may have."""
    rate, channels = int(codec.sample_rate or 0), int(codec.channels or 0)
    convert = f"convert it: `ffmpeg -i {path} -ac 1 -ar 16000 out.wav`"
    if not FILE_RATES_HZ[0] <= rate <= FILE_RATES_HZ[1]:
        raise SourceOpenError(
            f"--mic {path}: {rate} Hz audio is not supported (files may have "
            f"{FILE_RATES_HZ[0]}-{FILE_RATES_HZ[1]} Hz; it is resampled to {SAMPLE_RATE}); {convert}"
        )
    if not 1 <= channels <= FILE_MAX_CHANNELS:
        raise SourceOpenError(
            f"--mic {path}: {channels} audio channels are not supported (files may have 1-{FILE_MAX_CHANNELS},"
            f" mixed down to mono); {convert}"
        )


class AudioFileSource(AudioSource):
    """A media file replayed like a microphone: paced to its media clock, EOS at the end (or, with loop, the
    next pass, reopened by path)."""

    def __init__(self, config: AudioSourceConfig) -> None:
        super().__init__(config)
        self._clock = ReplayClock(config.replay)
        self._container: Any = None
        self._decoded: Iterator[np.ndarray] | None = None
        self._buf = np.zeros(0, np.float32)
        self._pass_samples = 0
        self._eof = False
        self._ended = False

    # -- lifecycle -------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Release the file."""
        if self._container is not None:
            self._container.close()
            self._container, self._decoded = None, None

    @property
    def is_open(self) -> bool:
        return self._container is not None

    def _open(self) -> None:
        assert self.uri.path is not None
        path = self.uri.path
        if path.is_dir():
            raise SourceOpenError(f"--mic {path} is a directory: pass a media file inside it")
        if not path.is_file():
            raise SourceNotFoundError(f"--mic {path}: no such file; {audio_inputs_hint()}")
        try:
            import av
        except ImportError as exc:
            raise SourceBackendError(
                "PyAV is missing: pip install av (it comes with faster-whisper)"
            ) from exc
        try:
            self._container = av.open(str(path))
        except (av.error.FFmpegError, OSError) as exc:
            raise SourceOpenError(
                f"--mic {path}: cannot read this media file ({exc}); convert it to WAV"
            ) from exc
        if not self._container.streams.audio:
            self.close()
            raise SourceOpenError(f"--mic {path}: the file has no audio track; pass a file with sound")
        try:
            _check_file_format(path, self._container.streams.audio[0].codec_context)
        except SourceOpenError:
            self.close()
            raise
        self._decoded = self._decode(self._container)
        self._buf, self._eof = np.zeros(0, np.float32), False
        try:
            self._fill(1)  # decode the first frame now: a corrupt or empty file fails here, not mid-run
        except (av.error.FFmpegError, OSError) as exc:
            self.close()
            raise SourceOpenError(
                f"--mic {path}: the audio track does not decode ({exc}); re-encode it: "
                f"`ffmpeg -i {path} -ac 1 -ar 16000 out.wav`"
            ) from exc
        if self._buf.shape[0] == 0:
            self.close()
            raise SourceOpenError(f"--mic {path}: the audio track holds no samples; pass a file with sound")
        if self.stats.chunks:  # a reopen after a failure: the timeline moves on
            self._clock.resume_after_gap()
        self._clock.start()
        self._pass_samples, self._ended = 0, False
        logger.info("audio file %s open", path)

    # -- decoding and reading --------------------------------------------------------------------------------
    @staticmethod
    def _decode(container: Any) -> Iterator[np.ndarray]:
        resampler = mono_resampler()
        for frame in container.decode(audio=0):
            yield frames_to_mono(resampler.resample(frame))
        yield frames_to_mono(resampler.resample(None))

    def _fill(self, n: int) -> None:
        """Decode until n samples are buffered or the file ends (`_eof`). Decoding errors propagate."""
        assert self._decoded is not None
        parts = [self._buf]
        have = self._buf.shape[0]
        while have < n and not self._eof:
            block = next(self._decoded, None)
            if block is None:
                self._eof = True
                break
            parts.append(block)
            have += block.shape[0]
        self._buf = np.concatenate(parts) if len(parts) > 1 else self._buf

    def _read(self, timeout_s: float) -> AudioChunk:
        import av

        if self._ended:
            return self._status(ReadStatus.EOS)
        n = round(self.config.chunk_s * SAMPLE_RATE)
        try:
            self._fill(n)
            if self._buf.shape[0] == 0 and self._eof and not self._next_pass():
                return self._status(ReadStatus.EOS if self._ended else ReadStatus.ERROR)
        except (av.error.FFmpegError, OSError) as exc:
            logger.warning("audio file %s failed while decoding: %s", self.uri, exc)
            return self._status(ReadStatus.ERROR)
        take = min(n, self._buf.shape[0])
        t_ns = self._clock.due_ns(samples_to_ns(self._pass_samples))
        due = self._clock.due_ns(samples_to_ns(self._pass_samples + take))
        if not self._clock.wait(due, timeout_s):
            return self._status(ReadStatus.TIMEOUT)
        samples, self._buf = self._buf[:take], self._buf[take:]
        self._pass_samples += take
        self._clock.emitted(due - 1)
        return self._emit(samples, t_ns)

    def _next_pass(self) -> bool:
        """At the end of the file: EOS, or with loop reopen it by path (noticing a deleted file) and go on."""
        assert self.uri.path is not None
        self.stats.passes += 1
        if not self.config.replay.loop:
            self._ended = True
            return False
        if self._pass_samples == 0:
            logger.error("audio file %s has no samples to loop over", self.uri)
            return False
        self._clock.next_pass(samples_to_ns(self._pass_samples))
        self.close()
        import av

        try:
            self._container = av.open(str(self.uri.path))
        except (av.error.FFmpegError, OSError) as exc:
            logger.warning(
                "audio file %s could not be opened again for the next loop pass: %s", self.uri, exc
            )
            return False
        self._decoded = self._decode(self._container)
        self._pass_samples, self._eof = 0, False
        self._fill(round(self.config.chunk_s * SAMPLE_RATE))
        return self._buf.shape[0] > 0
