"""Speech synthesised from text with espeak-ng, as 16 kHz mono PCM for the live audio extractor (no torch).

Used to build a training corpus when only transcripts carry labels (tools/build_corpus.py, docs/CORPUS.md):
the audio of a sample is real speech signal through the real extractor, but its prosody comes from a voice
drawn by `sample_voice` from an explicit `numpy.random.Generator` that never sees the label. So the audio
stream of such a corpus carries presence, timing and signal quality, never affect.

`synthesize(text, voice)` runs `espeak-ng -v VOICE+VARIANT -s RATE -p PITCH --stdout` with the text on stdin
(so a text starting with "-" is never read as an option), parses the WAV it writes (16-bit mono, 22.05 kHz)
and resamples it to 16 kHz with `resample_to_16k`: the same band-limited interpolation as
`edge.features.to_mono_16k` (Kaiser-windowed sinc), but with the kernel of each of the L output phases of a
rational ratio L/M computed once instead of per sample, which makes it ~6x faster on speech-length inputs and
equal to it to float rounding (tests/integration/test_corpus.py).
"""

from __future__ import annotations

import io
import logging
import math
import shutil
import subprocess
import wave
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from edge.features.audio_quality import TARGET_RATE
from qamoe.errors import ConfigError, QAMoEError

logger = logging.getLogger(__name__)

# espeak-ng's English voices built from its own data (no MBROLA binary needed), and variant files that ship
# with espeak-ng (male 1-7, female 1-5). Unknown names are not an error in espeak-ng (it falls back
# silently), so the defaults are a checked list.
DEFAULT_VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan",
                  "en-gb-x-gbcwmd")
DEFAULT_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
_ZERO_CROSSINGS = 16  # as edge.features.audio_quality's resampler
_KAISER_BETA = 8.6
_OUT_CHUNK = 32_000  # output samples per gather: ~12 MB of indices


class SynthError(QAMoEError, RuntimeError):
    """espeak-ng is missing, failed, or produced no audio for a text; the message names the fix (the corpus
    build skips the sample; exit 1 under `qamoe.cli.run_main`)."""


class SynthConfigError(SynthError, ConfigError):
    """An invalid `VoiceSpace` (a ConfigError: exit 2)."""


@dataclass(frozen=True)
class Voice:
    """One espeak-ng voice setting: `-v name+variant -s rate_wpm -p pitch`."""

    name: str
    variant: str
    rate_wpm: int
    pitch: int

    @property
    def spec(self) -> str:
        return f"{self.name}+{self.variant}"

    def to_dict(self) -> dict[str, str | int]:
        return {"voice": self.spec, "rate_wpm": self.rate_wpm, "pitch": self.pitch}


@dataclass(frozen=True)
class VoiceSpace:
    """Where `sample_voice` draws from: uniform over voices, variants, integer rates and pitches (inclusive).
    Rates of 130-210 words/min span slow to brisk conversational speech around espeak-ng's default 175;
    pitches 25-75 span its 0-99 scale around the default 50 without cartoonish extremes."""

    voices: tuple[str, ...] = DEFAULT_VOICES
    variants: tuple[str, ...] = DEFAULT_VARIANTS
    rate_wpm: tuple[int, int] = (130, 210)
    pitch: tuple[int, int] = (25, 75)

    def __post_init__(self) -> None:
        if not self.voices or not self.variants:
            raise SynthConfigError("VoiceSpace needs at least one voice and one variant (e.g. 'en-us', 'm1')")
        bad = [v for v in self.voices + self.variants if not v or not all(c.isalnum() or c in "-_" for c in v)]
        if bad:
            raise SynthConfigError(f"voice/variant names {bad} are not espeak-ng names: see espeak-ng --voices")
        lo, hi = self.rate_wpm
        if not 80 <= lo <= hi <= 450:
            raise SynthConfigError(f"rate_wpm={self.rate_wpm}: use (lo, hi) words/min within 80-450")
        lo, hi = self.pitch
        if not 0 <= lo <= hi <= 99:
            raise SynthConfigError(f"pitch={self.pitch}: use (lo, hi) within espeak-ng's 0-99")


def sample_voice(rng: np.random.Generator, space: VoiceSpace | None = None) -> Voice:
    """A voice drawn from `space` with `rng` alone: it takes no label, so prosody carries no label."""
    space = space if space is not None else VoiceSpace()
    return Voice(
        name=space.voices[int(rng.integers(len(space.voices)))],
        variant=space.variants[int(rng.integers(len(space.variants)))],
        rate_wpm=int(rng.integers(space.rate_wpm[0], space.rate_wpm[1] + 1)),
        pitch=int(rng.integers(space.pitch[0], space.pitch[1] + 1)),
    )


def espeak_binary() -> str:
    """The espeak-ng executable, or SynthError naming how to install it."""
    path = shutil.which("espeak-ng")
    if path is None:
        raise SynthError("espeak-ng not found on PATH: install it (Debian/Ubuntu: apt-get install espeak-ng)")
    return path


def synthesize(text: str, voice: Voice, *, timeout_s: float = 60.0) -> np.ndarray:
    """`text` spoken by `voice`: mono float32 PCM at 16 kHz in [-1, 1)."""
    if not text.strip():
        raise SynthError("empty text: there is nothing to synthesise; skip the sample")
    cmd = [espeak_binary(), "-v", voice.spec, "-s", str(voice.rate_wpm), "-p", str(voice.pitch), "--stdout"]
    try:
        proc = subprocess.run(cmd, input=text.encode("utf-8"), capture_output=True, timeout=timeout_s,
                              check=False)
    except subprocess.TimeoutExpired as exc:
        raise SynthError(f"espeak-ng took over {timeout_s:.0f} s for {len(text)} characters: "
                         "shorten the text or raise timeout_s") from exc
    if proc.returncode != 0:
        raise SynthError(f"espeak-ng failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[:200]}"
                         f"; check the voice {voice.spec!r} with `espeak-ng --voices`")
    samples, rate = read_wav(proc.stdout)
    if samples.size == 0 or not np.any(samples):
        raise SynthError(f"espeak-ng produced no sound for {text[:60]!r}: skip the sample")
    return resample_to_16k(samples, rate)


def read_wav(data: bytes) -> tuple[np.ndarray, int]:
    """(float64 samples in [-1, 1), rate) of a 16-bit mono WAV held in memory."""
    try:
        with wave.open(io.BytesIO(data)) as w:
            if w.getnchannels() != 1 or w.getsampwidth() != 2:
                raise SynthError(f"expected 16-bit mono WAV from espeak-ng, got {w.getnchannels()} channel(s) "
                                 f"of {8 * w.getsampwidth()} bits: use a standard espeak-ng build")
            rate = w.getframerate()
            frames = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise SynthError(f"espeak-ng wrote no readable WAV ({exc}): check `espeak-ng --stdout hello`") from exc
    return np.frombuffer(frames, "<i2").astype(np.float64) / 32768.0, rate


def resample_to_16k(x: np.ndarray, rate: int) -> np.ndarray:
    """Float PCM at integer `rate` -> float32 at 16 kHz, `to_mono_16k`'s interpolation with per-phase kernels.

    Output sample m sits at input time t_m = m M / L (L/M = 16000 / rate in lowest terms); its fractional
    part, and hence its kernel, depends only on m mod L."""
    if rate == TARGET_RATE:
        return np.asarray(x, np.float32)
    ratio = Fraction(TARGET_RATE, int(rate))
    up, down = ratio.numerator, ratio.denominator
    step = rate / TARGET_RATE
    cutoff = 0.95 * min(1.0, TARGET_RATE / rate)
    half = math.ceil(_ZERO_CROSSINGS / cutoff)
    taps = np.arange(-half + 1, half + 1)
    phase = np.arange(up)
    base = (phase * down) // up  # floor(t) for the first period of phases
    u = (phase * step - base)[:, None] - taps[None, :]
    taper = np.sqrt(np.clip(1.0 - (u / half) ** 2, 0.0, None))
    kernel = cutoff * np.sinc(cutoff * u) * np.i0(_KAISER_BETA * taper) / np.i0(_KAISER_BETA)  # [up, taps]
    n_out = round(x.shape[0] / step)
    padded = np.concatenate([np.zeros(half), np.asarray(x, np.float64), np.zeros(half + 1)])
    out = np.empty(n_out, np.float32)
    for start in range(0, n_out, _OUT_CHUNK):  # bounded memory for long texts
        m = np.arange(start, min(start + _OUT_CHUNK, n_out))
        idx = ((m // up) * down + base[m % up])[:, None] + taps[None, :] + half
        out[m] = np.einsum("ij,ij->i", padded[idx], kernel[m % up])
    return out
