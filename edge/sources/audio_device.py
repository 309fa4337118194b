"""A live audio input (`--mic default`, a device-name substring, an index), read as mono float32 at 16 kHz.

A sounddevice `InputStream` whose callback only stamps the block and pushes it into a bounded `AudioRing`
(drop-oldest, counted). 16 kHz mono is asked of the device first; PulseAudio's `pulse` device and ALSA's
`default`/`plughw` convert for us. A device that refuses is captured at its own rate and channel count,
down-mixed and resampled on the reading side with FFmpeg's streaming resampler (PyAV), which keeps its filter
state between chunks. Timestamps follow a continuous sample clock anchored at `time.monotonic_ns()` in the
callback (minus the reported input latency) and re-anchored after a gap (overflow, xrun) larger than 20 ms.
A device that delivers nothing for `stall_s` reads as ERROR (its owner reopens it).

Built by `open_audio_source(config)` (`edge.sources.factory`) for a device URI (see `edge.sources.audio`).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np

from edge.pyav import mono_resampler
from edge.sources.audio import AudioSource, AudioSourceConfig, frames_to_mono
from edge.sources.buffers import AudioRing
from edge.sources.devices import audio_inputs_hint, import_sounddevice, rescan_audio, resolve_mic
from edge.sources.errors import SourceNotFoundError, SourceOpenError
from edge.sources.types import SAMPLE_RATE, AudioChunk, ReadStatus, samples_to_ns
from edge.vocab import NS

logger = logging.getLogger(__name__)

_RESYNC_NS = 20_000_000  # re-anchor the sample clock when the callback's stamp is off by more than this


class StreamResampler:
    """Mono float32 at `rate_in` -> 16 kHz, chunk by chunk, with FFmpeg's resampler state carried across."""

    def __init__(self, rate_in: int) -> None:
        import av

        self.rate_in = rate_in
        self._av = av
        self._resampler = mono_resampler()

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        frame = self._av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = self.rate_in
        return frames_to_mono(self._resampler.resample(frame))


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


class MicrophoneSource(AudioSource):
    """A live input. The device callback runs on PortAudio's thread and only touches the ring."""

    def __init__(self, config: AudioSourceConfig) -> None:
        super().__init__(config)
        self._stream: Any = None
        self._generation = 0  # bumped at every close: callbacks of an earlier stream are dropped
        self._ring: AudioRing | None = None
        self._resample: StreamResampler | None = None
        self._next_t_ns: int | None = None
        self._last_callback = 0.0

    # -- lifecycle -------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Release the device. Its stream is closed on a helper thread, waited for `release_s`: when its
        sound server dies, PortAudio's abort can block for good (its capture thread stuck inside the ALSA
        plugin), and this source must still be able to reopen and to stop. Such a stream is abandoned to its
        parked helper thread, counted in `stats.abandoned_streams`, and its late callbacks are dropped.
        Pa_CloseStream unlinks the stream from PortAudio's open-stream list before it aborts it, so a later
        `rescan_audio()` (Pa_Terminate) does not touch it again."""
        if self._stream is not None:
            stream, self._stream = self._stream, None
            self._generation += 1
            if not _release_stream(stream, self.config.release_s):
                self.stats.abandoned_streams += 1
                logger.warning("audio input %s: PortAudio did not close the stream within %.1f s; abandoned it "
                               "(its thread stays parked) and going on", self.uri, self.config.release_s)  # fmt: skip

    @property
    def is_open(self) -> bool:
        return self._stream is not None

    def _open(self) -> None:
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

    # -- capture and reading ---------------------------------------------------------------------------------
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
        t_first = now - int(latency * NS) if 0 < latency < 1 else now - samples_to_ns(frames, ring.rate)
        expected = self._next_t_ns
        if expected is not None:
            # Samples cannot predate the end of the previous block: an earlier stamp is jitter (clamp); later
            # one by more than _RESYNC_NS means samples were lost (re-anchor, leaving a gap in the timeline).
            if t_first - expected > _RESYNC_NS:
                self.stats.clock_resyncs += 1
                self.stats.gap_samples += (t_first - expected) * SAMPLE_RATE // NS
            else:
                t_first = expected
        self._next_t_ns = t_first + samples_to_ns(frames, ring.rate)
        mono = indata[:, 0] if indata.shape[1] == 1 else indata.mean(axis=1)
        ring.push(mono, t_first)
        self.stats.ring_dropped_samples = ring.dropped_samples

    def _read(self, timeout_s: float) -> AudioChunk:
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
