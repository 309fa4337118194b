"""Microphone and audio-file input, always delivered as mono float32 at 16 kHz (`AudioChunk`).

Devices: a sounddevice `InputStream` whose callback only stamps the block and pushes it into a bounded
`AudioRing` (drop-oldest, counted). 16 kHz mono is asked of the device first; PulseAudio's `pulse` device and
ALSA's `default`/`plughw` convert for us. A device that refuses is captured at its own rate and channel count,
down-mixed and resampled on the reading side with FFmpeg's streaming resampler (PyAV), which keeps its filter
state between chunks. Timestamps follow a continuous sample clock anchored at `time.monotonic_ns()` in the
callback (minus the reported input latency) and re-anchored after a gap (overflow, xrun) larger than 20 ms.
A device that delivers nothing for `stall_s` reads as ERROR (its owner reopens it).

Files (WAV or any media FFmpeg reads, e.g. the audio track of an MPEG): decoded lazily with PyAV, resampled to
16 kHz mono, and replayed on the media clock (real time or fast; see `edge.sources.replay`). Supported: any sample
format FFmpeg decodes (8/16/24/32-bit integer, float, double), 8-384 kHz, 1-8 channels (mixed down). Refused at
open, with the conversion to run: a lower rate (below telephone band, speech is not intelligible to the ASR), more
channels (no standard layout to mix down), or a file whose first audio frame does not decode (truncated, corrupt,
or empty).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge.sources.buffers import AudioRing
from edge.sources.devices import audio_inputs_hint, import_sounddevice, rescan_audio, resolve_mic
from edge.sources.errors import SourceBackendError, SourceConfigError, SourceNotFoundError, SourceOpenError
from edge.sources.replay import ReplayClock, ReplayConfig
from edge.sources.types import SAMPLE_RATE, AudioChunk, ReadStatus, empty_chunk, samples_to_ns
from edge.sources.uri import MicKind, MicUri

logger = logging.getLogger(__name__)

_RESYNC_NS = 20_000_000  # re-anchor the sample clock when the callback's stamp is off by more than this
FILE_RATES_HZ = (8_000, 384_000)  # sample rates a file may have (resampled to 16 kHz)
FILE_MAX_CHANNELS = 8  # up to 7.1; mixed down to mono


@dataclass(frozen=True)
class AudioSourceConfig:
    """`chunk_s`: most audio one read returns. `ring_s`: device buffer between the callback and read().
    `stall_s`: a device silent (no callbacks) this long reads as ERROR. `latency`: PortAudio 'low'/'high'.
    `release_s`: longest wait for PortAudio to close a device stream before it is abandoned (see `close()`)."""

    uri: MicUri
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    chunk_s: float = 0.1
    ring_s: float = 2.0
    stall_s: float = 2.0
    latency: str = "low"
    release_s: float = 2.0

    def __post_init__(self) -> None:
        if not isinstance(self.uri, MicUri):
            raise SourceConfigError("uri: parse the --mic string with edge.sources.parse_mic first")
        if self.uri.kind is MicKind.NONE:
            raise SourceConfigError("--mic none has no AudioSource: run the pipeline without audio instead")
        if not 0.01 <= self.chunk_s <= 5.0:
            raise SourceConfigError(f"chunk_s={self.chunk_s}: use 0.01-5 s (0.1 s is typical)")
        if not self.chunk_s < self.ring_s <= 600:
            raise SourceConfigError(f"ring_s={self.ring_s}: must exceed chunk_s and be at most 600 s")
        if not 0.1 <= self.stall_s <= 60:
            raise SourceConfigError(f"stall_s={self.stall_s}: use 0.1-60 s")
        if not 0.1 <= self.release_s <= 60:
            raise SourceConfigError(f"release_s={self.release_s}: use 0.1-60 s")
        if self.latency not in ("low", "high"):
            raise SourceConfigError(f"latency={self.latency!r}: use 'low' or 'high'")


@dataclass
class AudioSourceStats:
    chunks: int = 0
    samples: int = 0  # at 16 kHz, delivered
    timeouts: int = 0
    errors: int = 0
    passes: int = 0  # completed passes over a file
    device_overflows: int = 0  # PortAudio reported input overflow (samples lost before our callback)
    ring_dropped_samples: int = 0  # dropped by our ring (reader too slow), at the capture rate
    clock_resyncs: int = 0
    gap_samples: int = 0  # at 16 kHz: lost before our callback (xruns, a stalled process), from the clock gaps
    capture_rate: int = SAMPLE_RATE
    abandoned_streams: int = 0  # device streams PortAudio did not close within release_s (see AudioSource.close)

    def snapshot(self) -> AudioSourceStats:
        return dataclasses.replace(self)


class StreamResampler:
    """Mono float32 at `rate_in` -> 16 kHz, chunk by chunk, with FFmpeg's resampler state carried across."""

    def __init__(self, rate_in: int) -> None:
        import av

        self.rate_in = rate_in
        self._av = av
        self._resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        frame = self._av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = self.rate_in
        return _frames_to_mono(self._resampler.resample(frame))


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


def _release_stream(stream: Any, timeout_s: float) -> bool:
    """Pa_CloseStream (it aborts a running stream first) on a daemon thread; False if it has not returned
    within timeout_s, and the thread is left parked with it."""
    done = threading.Event()

    def release() -> None:
        try:
            stream.close(ignore_errors=True)
        finally:
            done.set()

    threading.Thread(target=release, name="audio-release", daemon=True).start()
    return done.wait(timeout_s)


def _frames_to_mono(frames: list[Any]) -> np.ndarray:
    if not frames:
        return np.zeros(0, np.float32)
    return np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.float32, copy=False)


class AudioSource:
    """open() / read(timeout_s) / close() over one mic URI. read() is for one owner thread; the device
    callback runs on PortAudio's thread and only touches the ring."""

    def __init__(self, config: AudioSourceConfig) -> None:
        self.config = config
        self.uri = config.uri
        self.stats = AudioSourceStats()
        self._seq = 0
        self._opened = False  # open() succeeded at least once: a later loss reads as ERROR
        # device state
        self._stream: Any = None
        self._generation = 0  # bumped at every close: callbacks of an earlier stream are dropped
        self._ring: AudioRing | None = None
        self._resample: StreamResampler | None = None
        self._next_t_ns: int | None = None
        self._last_callback = 0.0
        # file state
        self._clock = ReplayClock(config.replay)
        self._container: Any = None
        self._decoded: Iterator[np.ndarray] | None = None
        self._buf = np.zeros(0, np.float32)
        self._pass_samples = 0
        self._eof = False
        self._ended = False

    # -- lifecycle -------------------------------------------------------------------------------------------
    def open(self) -> None:
        """Open the file or device. Raises SourceNotFoundError / SourceOpenError / SourceBackendError."""
        self.close()
        if self.uri.is_file:
            self._open_file()
        else:
            self._open_device()
        self._opened = True

    def close(self) -> None:
        """Release the device or file. A device stream is closed on a helper thread, waited for `release_s`:
        when its sound server dies, PortAudio's abort can block for good (its capture thread stuck inside the
        ALSA plugin), and this source must still be able to reopen and to stop. Such a stream is abandoned
        to its parked helper thread, counted in `stats.abandoned_streams`, and its late callbacks are dropped.
        Pa_CloseStream unlinks the stream from PortAudio's open-stream list before it aborts it, so a later
        `rescan_audio()` (Pa_Terminate) does not touch it again."""
        if self._stream is not None:
            stream, self._stream = self._stream, None
            self._generation += 1
            if not _release_stream(stream, self.config.release_s):
                self.stats.abandoned_streams += 1
                logger.warning("audio input %s: PortAudio did not close the stream within %.1f s; abandoned it "
                               "(its thread stays parked) and going on", self.uri, self.config.release_s)  # fmt: skip
        if self._container is not None:
            self._container.close()
            self._container, self._decoded = None, None

    @property
    def is_open(self) -> bool:
        return self._stream is not None or self._container is not None

    def __enter__(self) -> AudioSource:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- device ----------------------------------------------------------------------------------------------
    def _open_device(self) -> None:
        sd = import_sounddevice()
        try:
            device = resolve_mic(self.uri)
        except SourceNotFoundError:
            # PortAudio lists devices only when initialised: look again for one that appeared since (a USB mic
            # plugged in, PulseAudio started). Safe here: this source has no stream open.
            rescan_audio()
            device = resolve_mic(self.uri)
        rate, channels = SAMPLE_RATE, 1
        try:
            sd.check_input_settings(device=device.index, samplerate=SAMPLE_RATE, channels=1, dtype="float32")
        except (sd.PortAudioError, ValueError):
            rate, channels = int(device.default_samplerate), min(device.channels, 2)
            logger.info("input %r refuses 16 kHz mono: capturing %d Hz x%d and resampling", device.name, rate,
                        channels)  # fmt: skip
        self._resample = StreamResampler(rate) if rate != SAMPLE_RATE else None
        self._ring = AudioRing(self.config.ring_s, rate)
        self.stats.capture_rate = rate
        self._next_t_ns = None
        generation = self._generation

        def callback(indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
            if generation == self._generation:  # not a stream closed (or abandoned) since
                self._callback(indata, frames, time_info, status)

        try:
            self._stream = sd.InputStream(device=device.index, samplerate=rate, channels=channels,
                                          dtype="float32", latency=self.config.latency,
                                          callback=callback)  # fmt: skip
            self._last_callback = time.monotonic()
            self._stream.start()
        except sd.PortAudioError as exc:
            self.close()
            raise SourceOpenError(f"cannot open audio input {device.index} {device.name!r}: {exc}; "
                                  f"{audio_inputs_hint()}") from exc  # fmt: skip
        logger.info("audio input %d %r open at %d Hz x%d", device.index, device.name, rate, channels)

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        """PortAudio's thread: stamp, down-mix, push. Nothing here blocks."""
        now = time.monotonic_ns()
        self._last_callback = time.monotonic()
        ring = self._ring
        if ring is None:
            return
        if status and status.input_overflow:
            self.stats.device_overflows += 1
        latency = time_info.currentTime - time_info.inputBufferAdcTime
        t_first = now - int(latency * 1e9) if 0 < latency < 1 else now - samples_to_ns(frames, ring.rate)
        expected = self._next_t_ns
        if expected is not None:
            # Samples cannot predate the end of the previous block: an earlier stamp is jitter (clamp); later
            # one by more than _RESYNC_NS means samples were lost (re-anchor, leaving a gap in the timeline).
            if t_first - expected > _RESYNC_NS:
                self.stats.clock_resyncs += 1
                self.stats.gap_samples += (t_first - expected) * SAMPLE_RATE // 1_000_000_000
            else:
                t_first = expected
        self._next_t_ns = t_first + samples_to_ns(frames, ring.rate)
        mono = indata[:, 0] if indata.shape[1] == 1 else indata.mean(axis=1)
        ring.push(mono, t_first)
        self.stats.ring_dropped_samples = ring.dropped_samples

    def _read_device(self, timeout_s: float) -> AudioChunk:
        assert self._ring is not None
        n = max(1, int(self.config.chunk_s * self._ring.rate))
        got = self._ring.pop(n, timeout_s, min_samples=n)
        if got is None:
            silent_for = time.monotonic() - self._last_callback
            if silent_for >= self.config.stall_s or not self._stream.active:
                logger.warning("audio input %s delivered nothing for %.1f s", self.uri, silent_for)
                return self._status(ReadStatus.ERROR)
            return self._status(ReadStatus.TIMEOUT)
        samples, t_ns = got
        if self._resample is not None:
            samples = self._resample(samples)
        return self._emit(samples, t_ns)

    # -- file ------------------------------------------------------------------------------------------------
    def _open_file(self) -> None:
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

    @staticmethod
    def _decode(container: Any) -> Iterator[np.ndarray]:
        import av

        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        for frame in container.decode(audio=0):
            yield _frames_to_mono(resampler.resample(frame))
        yield _frames_to_mono(resampler.resample(None))

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

    def _read_file(self, timeout_s: float) -> AudioChunk:
        import av

        if self._ended:
            return self._status(ReadStatus.EOS)
        n = int(round(self.config.chunk_s * SAMPLE_RATE))
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
        self._fill(int(round(self.config.chunk_s * SAMPLE_RATE)))
        return self._buf.shape[0] > 0

    # -- common ----------------------------------------------------------------------------------------------
    def read(self, timeout_s: float = 1.0) -> AudioChunk:
        """Up to chunk_s of audio, or an empty chunk with status TIMEOUT / EOS / ERROR. Never raises for a
        failing device or file; raises SourceOpenError only if called before open()."""
        if not self.is_open:
            if self._opened:  # lost mid-run (e.g. a looped file gone): the owner reopens
                return self._status(ReadStatus.ERROR)
            raise SourceOpenError(f"audio source {self.uri} is not open: call open() first")
        return self._read_file(timeout_s) if self.uri.is_file else self._read_device(timeout_s)

    def _status(self, status: ReadStatus) -> AudioChunk:
        if status is ReadStatus.TIMEOUT:
            self.stats.timeouts += 1
        elif status is ReadStatus.ERROR:
            self.stats.errors += 1
        return empty_chunk(status, time.monotonic_ns(), self._seq)

    def _emit(self, samples: np.ndarray, t_ns: int) -> AudioChunk:
        self._seq += 1
        self.stats.chunks += 1
        self.stats.samples += samples.shape[0]
        return AudioChunk(ReadStatus.OK, samples, t_ns, self._seq)
