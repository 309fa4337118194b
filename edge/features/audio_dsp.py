"""The spectral and pitch analysis behind the audio features: mel filterbank, DCT, and per-hop YIN.

Split from `edge.features.audio` (the streaming extractor and the frame geometry; its configuration is in
`edge.features.audio_config`); the equations are in that module's docstring. This is the numpy reference; the
compiled twin (`edge.features.dsp_native.NativeHopAnalyser`) extends `HopAnalyser`."""

from __future__ import annotations

import numpy as np

from edge.features.audio_config import PITCH_RATE, AudioFeatureConfig
from edge.features.audio_quality import polyphase_lowpass

LOG_FLOOR = 1e-10


def mel_filterbank(n_mels: int, n_fft: int, rate: int, fmin: float, fmax: float) -> np.ndarray:
    """Triangular filters (n_mels, n_fft // 2 + 1), peak 1, equally spaced on the HTK mel scale."""
    def to_mel(f: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + f / 700.0)

    edges_mel = np.linspace(to_mel(np.array(fmin)), to_mel(np.array(fmax)), n_mels + 2)
    edges = 700.0 * (10.0 ** (edges_mel / 2595.0) - 1.0)
    freqs = np.arange(n_fft // 2 + 1) * rate / n_fft
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None, :] - lower) / (centre - lower)
    falling = (upper - freqs[None, :]) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling))


def dct_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Orthonormal DCT-II basis (n_out, n_in): c = D @ x."""
    basis = np.cos(np.pi * np.arange(n_out)[:, None] * (np.arange(n_in)[None, :] + 0.5) / n_in)
    scale = np.full((n_out, 1), np.sqrt(2.0 / n_in))
    scale[0] = np.sqrt(1.0 / n_in)
    return basis * scale


class HopAnalyser:
    """Per-hop spectral and YIN pitch analysis of one block's samples plus their left/right context."""

    def __init__(self, cfg: AudioFeatureConfig) -> None:
        rate, win, hop = cfg.sample_rate, cfg.win_samples, cfg.hop_samples
        self.cfg = cfg
        self.window = np.hamming(win).astype(np.float32)
        fb = mel_filterbank(cfg.n_mels, cfg.n_fft, rate, cfg.mel_fmin_hz, cfg.mel_fmax_hz)
        self.fb_t = fb.T.astype(np.float32)
        self.dct_t = dct_matrix(cfg.n_mfcc, cfg.n_mels).T.astype(np.float32)
        self.decim = rate // PITCH_RATE
        self.poly, half = polyphase_lowpass(rate, PITCH_RATE)
        self.tau_lo = int(np.floor(PITCH_RATE / cfg.f0_max_hz))
        self.tau_hi = int(np.ceil(PITCH_RATE / cfg.f0_min_hz)) + 1
        plen = max(round(cfg.win_s * PITCH_RATE), self.tau_hi - 1) + self.tau_hi
        self.plen, self.pitch_nfft = plen, 1 << int(np.ceil(np.log2(plen + self.tau_hi)))
        n_hops = cfg.block_frames * cfg.hops_per_frame
        reach_left = self.decim * (plen // 2) + half
        reach_right = self.decim * (plen - 1 - plen // 2) + self.poly.size - half
        self.left = max(win // 2 + 1, reach_left) - hop // 2
        self.right = max(win - win // 2, reach_right) - (hop - hop // 2)
        centres = self.left + hop * np.arange(n_hops) + hop // 2
        self.spec_idx = (centres - win // 2)[:, None] + np.arange(win)[None, :]
        self.decim_start = centres[0] - reach_left
        self.n_decim = (hop // self.decim) * (n_hops - 1) + plen
        self.decim_rows = self.n_decim + self.poly.shape[1] - 1
        starts = (hop // self.decim) * np.arange(n_hops)[:, None]
        self.pitch_idx = starts + np.arange(plen)[None, :]
        taus = np.arange(1, self.tau_hi + 1)[None, :]
        # energy of x[0 : L - tau] plus that of x[tau : L], as differences of one cumulative sum
        self.head_end, self.tail_start, self.frame_ends = starts + plen - taus, starts + taus, starts + plen
        self.frame_starts = starts

    def analyse(self, seg: np.ndarray) -> tuple[np.ndarray, ...]:
        """(mfcc, log-mel, power, energy_db, zcr, F0, voicing probability, voiced) per hop, by `spectral()`
        and `pitch()`."""
        mfcc, log_mel, power, energy_db, zcr = self.spectral(seg)
        return (mfcc, log_mel, power, energy_db, zcr, *self.pitch(seg, energy_db))

    def mel(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(MFCC, log-mel) of windowed frames (hops x <= n_fft samples, zero-padded to n_fft)."""
        spec = np.fft.rfft(frames, n=self.cfg.n_fft, axis=1)
        log_mel = np.log(np.maximum((spec.real * spec.real + spec.imag * spec.imag) @ self.fb_t, LOG_FLOOR))
        return log_mel @ self.dct_t, log_mel

    def spectral(self, seg: np.ndarray) -> tuple[np.ndarray, ...]:
        """(mfcc, log-mel, power, energy_db, zcr) per hop."""
        cfg = self.cfg
        raw = seg[self.spec_idx]
        power = np.einsum("ij,ij->i", raw, raw).astype(np.float64) / cfg.win_samples
        energy_db = 10.0 * np.log10(np.maximum(power, LOG_FLOOR))
        sign = np.signbit(raw)
        zcr = np.count_nonzero(sign[:, 1:] != sign[:, :-1], axis=1) / (cfg.win_samples - 1)
        emphasised = seg[1:] - np.float32(cfg.preemphasis) * seg[:-1]
        mfcc, log_mel = self.mel(emphasised[self.spec_idx - 1] * self.window)
        return mfcc, log_mel, power, energy_db, zcr

    def decimate(self, seg: np.ndarray) -> np.ndarray:
        """Low-passed signal at PITCH_RATE: y[i] = sum_k h[k] seg[start + D i + k], computed polyphase."""
        rows = seg[self.decim_start:self.decim_start + self.decim * self.decim_rows].reshape(-1, self.decim)
        z = rows @ self.poly  # z[r, m] = sum_p h[D m + p] seg[start + D r + p]
        m = self.poly.shape[1]
        diagonal = (z.strides[0], z.strides[0] + z.strides[1])  # y[i] = sum_m z[i + m, m]
        return np.lib.stride_tricks.as_strided(z, (self.n_decim, m), diagonal, writeable=False).sum(axis=1)

    def pitch(self, seg: np.ndarray, energy_db: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(F0 in Hz, voicing probability, voiced flag) per hop, by YIN (see the module docstring)."""
        lo, hi, n = self.tau_lo, self.tau_hi, self.pitch_nfft
        y = self.decimate(seg)
        x = y[self.pitch_idx]
        spec = np.fft.rfft(x, n=n, axis=1)
        acf = np.fft.irfft(spec.real * spec.real + spec.imag * spec.imag, n=n, axis=1)[:, 1:hi + 1]
        cum = np.zeros(y.shape[0] + 1)
        np.cumsum(np.square(y, dtype=np.float64), out=cum[1:])
        both = cum[self.head_end] - cum[self.tail_start] + (cum[self.frame_ends] - cum[self.frame_starts])
        d = np.maximum(both.astype(np.float32) - 2.0 * acf, 0.0)
        running = np.cumsum(d, axis=1)
        dn = np.ones_like(d)  # dn[:, t - 1] = d'(t)
        np.divide(d * np.arange(1, hi + 1, dtype=np.float32), running, out=dn, where=running > 1e-12)
        cand, nxt = dn[:, lo - 1:hi - 1], dn[:, lo:hi]
        below = cand < self.cfg.yin_threshold
        has_dip = below.any(axis=1)
        walk = (nxt >= cand) & (np.arange(hi - lo) >= np.argmax(below, axis=1)[:, None])
        pick = np.where(walk.any(axis=1), np.argmax(walk, axis=1), hi - lo - 1)
        tau = np.where(has_dip, pick, np.argmin(cand, axis=1)) + lo
        rows = np.arange(x.shape[0])
        a, b, c = dn[rows, tau - 2], dn[rows, tau - 1], dn[rows, tau]
        shift = 0.5 * (a - c) / np.maximum(a - 2.0 * b + c, 1e-9)
        f0 = PITCH_RATE / (tau + np.minimum(np.maximum(shift, -1.0), 1.0))
        voiced = has_dip & (energy_db > self.cfg.silence_db) & (f0 >= self.cfg.f0_min_hz)
        return f0, np.maximum(1.0 - b, 0.0), voiced & (f0 <= self.cfg.f0_max_hz)
