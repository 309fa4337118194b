"""Signal-quality cues for the audio extractor: a rolling SNR estimate and the clipping fraction.

SNR estimator (all powers are mean squares of 25 ms analysis windows, one per 10 ms hop). For each model
frame, take the hops of the last `history` seconds up to and including the frame's last hop (fewer at stream
start):

    P_noise  = order statistic at quantile q_n (default 0.10) of the hop powers    -- the noise floor
    P_signal = mean power of the hops whose Silero speech probability >= 0.5        -- the speech level
               (fewer than `min_speech_hops` such hops: order statistic at q_s = 0.95 of all hop powers)
    SNR_dB   = clip(10 log10(max(P_signal / P_noise - 1, 0.1)), -10, 60),  P_noise >= 1e-10 (-100 dBFS)

`P_signal / P_noise - 1` removes the noise that speech frames also carry (speech hop power = S + N), so white
noise mixed in at 0 dB over a clip with speech half the time reads about +3 dB, a clean recording reads tens
of dB, and pure noise or silence reads about -10 dB (the floor). The order statistic is the k-th smallest
value, k = floor(q (n - 1)) (no interpolation, so it is exact and cheap).

Clipping fraction: share of the frame's samples with |x| >= the clip level (default 0.99).

Input conditioning: `to_mono_16k` (stereo downmix, integer PCM scaling, band-limited resampling) and the
polyphase low-pass that decimates 16 kHz to the 4 kHz pitch rate.
"""

from __future__ import annotations

import math

import numpy as np

from edge.errors import SourceFault
from edge.vocab import SAMPLE_RATE as TARGET_RATE

POWER_FLOOR = 1e-10
SNR_MIN_DB = -10.0
SNR_MAX_DB = 60.0


def clip_fraction(spans: np.ndarray, level: float) -> np.ndarray:
    """Share of samples per row of `spans` (frames x samples) whose magnitude reaches `level`."""
    return np.mean(np.abs(spans) >= level, axis=1)


class SnrTracker:
    """Rolling, causal SNR estimate from hop powers and per-hop speech flags (see the module docstring)."""

    def __init__(
        self,
        *,
        history_hops: int,
        hops_per_frame: int,
        noise_quantile: float = 0.10,
        signal_quantile: float = 0.95,
        min_speech_hops: int = 10,
    ) -> None:
        self._n = history_hops
        self._hpf = hops_per_frame
        self._qn = noise_quantile
        self._qs = signal_quantile
        self._min_speech = min_speech_hops
        self.reset()

    @property
    def settings(self) -> tuple[int, float, float, int]:
        """(history_hops, noise_quantile, signal_quantile, min_speech_hops): what a compiled twin needs."""
        return self._n, self._qn, self._qs, self._min_speech

    def reset(self) -> None:
        self._power = np.zeros(0, np.float64)
        self._speech = np.zeros(0, bool)

    def update(self, power: np.ndarray, speech: np.ndarray) -> np.ndarray:
        """Append one block of hop powers/speech flags (a whole number of frames); SNR (dB) of each frame."""
        if power.shape[0] % self._hpf:
            raise ValueError(f"update() needs whole frames: {power.shape[0]} hops, {self._hpf} per frame")
        keep = max(self._power.shape[0] - (self._n - 1), 0)  # older hops are out of every window
        hist_p = np.concatenate([self._power[keep:], power])
        hist_s = np.concatenate([self._speech[keep:], speech])
        self._power, self._speech = hist_p, hist_s
        ends = hist_p.shape[0] - power.shape[0] + np.arange(self._hpf, power.shape[0] + 1, self._hpf)
        starts = np.maximum(ends - self._n, 0)
        noise, loud = self._order_stats(hist_p, starts, ends)
        cum_p = np.concatenate([[0.0], np.cumsum(np.where(hist_s, hist_p, 0.0))])
        cum_n = np.concatenate([[0], np.cumsum(hist_s)])
        n_speech = cum_n[ends] - cum_n[starts]
        speech_mean = (cum_p[ends] - cum_p[starts]) / np.maximum(n_speech, 1)
        signal = np.where(n_speech >= self._min_speech, speech_mean, loud)
        ratio = np.maximum(signal / np.maximum(noise, POWER_FLOOR) - 1.0, 10.0 ** (SNR_MIN_DB / 10.0))
        return np.minimum(10.0 * np.log10(ratio), SNR_MAX_DB)  # the floor is already in `ratio`

    def _order_stats(self, power: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, ...]:
        """Order statistics k = floor(q (n - 1)) at the noise and signal quantiles of each window."""
        if np.all(ends - starts == self._n):  # steady state: one vectorised partition
            k = (int(self._qn * (self._n - 1)), int(self._qs * (self._n - 1)))
            windows = power[starts[:, None] + np.arange(self._n)]
            part = np.partition(windows, k, axis=1)
            return part[:, k[0]], part[:, k[1]]
        stats = []
        for s, e in zip(starts, ends, strict=True):  # stream start: windows still growing
            k = (int(self._qn * (e - s - 1)), int(self._qs * (e - s - 1)))
            part = np.partition(power[s:e], k)
            stats.append((part[k[0]], part[k[1]]))
        return tuple(np.array(col) for col in zip(*stats, strict=True))


# --- input conditioning ------------------------------------------------------------------------------

_MIN_RATE, _MAX_RATE = 4_000, 384_000
_KAISER_BETA = 8.6  # ~ -90 dB stop band
_ZERO_CROSSINGS = 16  # sinc half-width in zero crossings of the lower of the two Nyquists
_OUT_CHUNK = 8192


class AudioInputError(SourceFault, ValueError):
    """Audio that the extractor cannot take; the message says how to convert it. The pipeline turns one into
    an invalid window and goes on, and the corpus tools skip the clip; one that escaped would be media from
    the source outside what the runtime takes (an unsupported sample rate or channel count, NaN samples), the
    README's exit 3, not a usage error."""


def to_mono_16k(samples: np.ndarray, sample_rate: float) -> np.ndarray:
    """Convert PCM (n,) or (n, channels <= 2), float or integer, at 4-384 kHz to mono float32 at 16 kHz.

    Stereo is downmixed by averaging; integer PCM is scaled to [-1, 1); other rates are resampled with a
    Kaiser-windowed sinc (beta 8.6, 16 zero crossings, cut-off 0.95 of the lower Nyquist)."""
    x = np.asarray(samples)
    if not math.isfinite(float(sample_rate)) or not _MIN_RATE <= sample_rate <= _MAX_RATE:
        raise AudioInputError(
            f"unsupported sample rate {sample_rate!r} Hz: pass the true capture rate, between "
            f"{_MIN_RATE} and {_MAX_RATE} Hz (e.g. 16000, 44100, 48000)"
        )
    if x.ndim == 2:
        if x.shape[1] > 2:
            raise AudioInputError(
                f"audio of shape {x.shape} has {x.shape[1]} channels; only mono or stereo "
                "(n_samples, channels) is supported: downmix first, or transpose (channels, n_samples) arrays"
            )
        floating = np.issubdtype(x.dtype, np.floating)
        x = x.astype(np.float64).mean(axis=1) if floating else _int_to_float(x).mean(axis=1)
    elif x.ndim != 1:
        raise AudioInputError(f"audio must be (n_samples,) or (n_samples, channels), got shape {x.shape}")
    x = x.astype(np.float64) if np.issubdtype(x.dtype, np.floating) else _int_to_float(x)
    if not np.all(np.isfinite(x)):
        raise AudioInputError("audio contains NaN or infinite samples: fix the capture or decoder upstream")
    if sample_rate != TARGET_RATE:
        x = _resample(x, float(sample_rate), float(TARGET_RATE))
    return x.astype(np.float32)


def _int_to_float(x: np.ndarray) -> np.ndarray:
    if not np.issubdtype(x.dtype, np.integer):
        raise AudioInputError(f"audio dtype {x.dtype} is not PCM: pass float or integer samples")
    info = np.iinfo(x.dtype)
    mid = (int(info.max) + int(info.min) + 1) / 2.0  # 0 for signed, 128 for uint8
    return (x.astype(np.float64) - mid) / (int(info.max) + 1 - mid)


def _resample(x: np.ndarray, rate_in: float, rate_out: float) -> np.ndarray:
    """Band-limited interpolation: y[m] = sum_n x[n] c sinc(c (t_m - n)) w((t_m - n) / K),
    t_m = m rate_in / rate_out, c the cut-off, w a Kaiser window of half-width K input samples."""
    step = rate_in / rate_out
    cutoff = 0.95 * min(1.0, rate_out / rate_in)
    half = math.ceil(_ZERO_CROSSINGS / cutoff)
    n_out = round(x.shape[0] / step)
    padded = np.concatenate([np.zeros(half), x, np.zeros(half + 1)])
    taps = np.arange(-half + 1, half + 1)
    out = np.empty(n_out)
    for start in range(0, n_out, _OUT_CHUNK):
        t = np.arange(start, min(start + _OUT_CHUNK, n_out)) * step
        base = np.floor(t).astype(np.int64)
        idx = base[:, None] + taps[None, :]
        u = t[:, None] - idx
        taper = np.sqrt(np.clip(1.0 - (u / half) ** 2, 0.0, None))
        kernel = cutoff * np.sinc(cutoff * u) * np.i0(_KAISER_BETA * taper) / np.i0(_KAISER_BETA)
        out[start:start + t.shape[0]] = np.sum(padded[idx + half] * kernel, axis=1)
    return out


def polyphase_lowpass(rate: int, rate_out: int) -> tuple[np.ndarray, int]:
    """Decimation low-pass h (Kaiser-windowed sinc, cut-off 0.85 rate_out / 2, 3 ms: 49 taps at 16 kHz) as a
    polyphase matrix H[p, m] = h[D m + p], D = rate / rate_out, zero-padded to a multiple of D taps; and the
    index of h's centre tap."""
    decim = rate // rate_out
    n = round(0.003 * rate) | 1
    cut = 0.85 * rate_out / rate
    h = cut * np.sinc(cut * (np.arange(n) - n // 2)) * np.kaiser(n, 8.0)
    padded = np.zeros(-(-n // decim) * decim)
    padded[:n] = h / h.sum()
    return padded.reshape(-1, decim).T.astype(np.float32).copy(), n // 2
