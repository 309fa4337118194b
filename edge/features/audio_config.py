"""The audio extractor's configuration and column names.

Below the extractor (`edge.features.audio`), the numpy analysis (`edge.features.audio_dsp`) and the compiled one
(`edge.features.dsp_native`), which all take an `AudioFeatureConfig`; the equations are in
`edge.features.audio`'s docstring."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from edge.errors import UsageError
from edge.features.vad import VAD_CHUNK
from edge.vocab import SAMPLE_RATE

PITCH_RATE = 4_000  # F0 <= 400 Hz needs no more; YIN runs on the signal decimated to this rate


class AudioConfigError(UsageError, ValueError):
    """An invalid `AudioFeatureConfig`; the message says what to change (exit 2)."""


def audio_feature_names(n_mfcc: int = 13) -> tuple[str, ...]:
    """Column names of the audio feature frames, in order."""
    return tuple(f"mfcc_{i}" for i in range(n_mfcc)) + (
        "log_energy_db", "f0_st", "voicing_prob", "voiced", "zcr", "spectral_flux",
        "vad_speech_prob", "snr_db", "clip_frac",
    )


AUDIO_FEATURE_NAMES = audio_feature_names()
# Width of the voice encoder columns (Whisper tiny.en's encoder; edge.features.voice_encoder), checked at load.
VOICE_ENCODER_DIM = 384


def voice_encoder_names(dim: int = VOICE_ENCODER_DIM) -> tuple[str, ...]:
    return tuple(f"wenc_{i:03d}" for i in range(dim))


def _samples(seconds: float, rate: int, what: str) -> int:
    n = round(seconds * rate)
    if n <= 0 or abs(n - seconds * rate) > 1e-6:
        raise AudioConfigError(f"{what}={seconds} s is not a positive whole number of samples at {rate} Hz")
    return n


@dataclass(frozen=True)
class AudioFeatureConfig:
    """Geometry and estimator settings of the audio extractor (defaults are the feature spec's)."""

    sample_rate: int = SAMPLE_RATE
    win_s: float = 0.025
    hop_s: float = 0.010
    frame_s: float = 0.040
    block_frames: int = 8
    n_fft: int = 512
    n_mels: int = 40
    n_mfcc: int = 13
    mel_fmin_hz: float = 20.0
    mel_fmax_hz: float = 8_000.0
    preemphasis: float = 0.97
    f0_min_hz: float = 60.0
    f0_max_hz: float = 400.0
    yin_threshold: float = 0.25
    silence_db: float = -60.0
    clip_level: float = 0.99
    vad_threshold: float = 0.5
    snr_history_s: float = 3.0
    snr_noise_quantile: float = 0.10
    resync_tolerance_s: float = 0.05
    vad_model_path: Path | None = None
    vad_threads: int = 1
    # After the 22 columns, the Whisper encoder's 384 per frame (edge.features.voice_encoder): not in the
    # default feature spec yet (docs/results/affect/summary.md); corpus tools take it with --voice-encoder.
    voice_encoder: bool = False

    def __post_init__(self) -> None:
        if self.sample_rate != SAMPLE_RATE:
            raise AudioConfigError(
                f"sample_rate={self.sample_rate}: the extractor (and Silero VAD) takes 16000 Hz only; "
                "convert the audio with edge.features.to_mono_16k() instead"
            )
        win, hop = self.win_samples, self.hop_samples
        if win < hop or self.n_fft < win:
            raise AudioConfigError(f"need hop ({hop}) <= window ({win}) <= n_fft ({self.n_fft}) samples")
        if hop % (self.sample_rate // PITCH_RATE):
            raise AudioConfigError(f"hop_s={self.hop_s} must be a whole number of samples at {PITCH_RATE} Hz")
        if _samples(self.frame_s, self.sample_rate, "frame_s") % hop:
            raise AudioConfigError(f"frame_s={self.frame_s} must be a whole number of hops of {self.hop_s} s")
        if self.block_frames < 1 or self.block_samples % VAD_CHUNK:
            raise AudioConfigError(
                f"block_frames={self.block_frames}: a block must hold whole {VAD_CHUNK}-sample VAD chunks "
                "(with 40 ms frames use a multiple of 4)"
            )
        if not 0 < self.n_mfcc <= self.n_mels:
            raise AudioConfigError(f"need 0 < n_mfcc ({self.n_mfcc}) <= n_mels ({self.n_mels})")
        if not 0 <= self.mel_fmin_hz < self.mel_fmax_hz <= self.sample_rate / 2:
            raise AudioConfigError("need 0 <= mel_fmin_hz < mel_fmax_hz <= sample_rate / 2")
        if not 0 < self.f0_min_hz < self.f0_max_hz <= self.sample_rate / 8:
            raise AudioConfigError("need 0 < f0_min_hz < f0_max_hz <= sample_rate / 8 (e.g. 60 and 400 Hz)")
        self._check_open_unit()
        if self.snr_history_s < self.frame_s:
            raise AudioConfigError(f"snr_history_s={self.snr_history_s} must cover at least one frame")
        if self.resync_tolerance_s <= 0 or self.vad_threads < 1:
            raise AudioConfigError("resync_tolerance_s must be > 0 and vad_threads >= 1")

    def _check_open_unit(self) -> None:
        for name in ("preemphasis", "yin_threshold", "vad_threshold", "snr_noise_quantile"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise AudioConfigError(f"{name}={value} must lie in [0, 1)")
        if not 0 < self.clip_level <= 1:
            raise AudioConfigError(f"clip_level={self.clip_level} must lie in (0, 1] (full scale is 1.0)")

    @cached_property
    def win_samples(self) -> int:
        return _samples(self.win_s, self.sample_rate, "win_s")

    @cached_property
    def hop_samples(self) -> int:
        return _samples(self.hop_s, self.sample_rate, "hop_s")

    @cached_property
    def frame_samples(self) -> int:
        return _samples(self.frame_s, self.sample_rate, "frame_s")

    @cached_property
    def hops_per_frame(self) -> int:
        return self.frame_samples // self.hop_samples

    @cached_property
    def block_samples(self) -> int:
        return self.block_frames * self.frame_samples

    @property
    def names(self) -> tuple[str, ...]:
        return audio_feature_names(self.n_mfcc) + (voice_encoder_names() if self.voice_encoder else ())
