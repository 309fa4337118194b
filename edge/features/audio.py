"""Audio features for QA-MoE: MFCC, prosody and signal-quality cues at 25 model frames per second.

Input: mono float32 PCM at 16 kHz in [-1, 1] (`to_mono_16k` converts other rates, int PCM and stereo) and the
monotonic time (ns) of its first sample. The same `AudioFeatureExtractor` runs streaming (`push()` chunks of
any size, `pop()` frames as they complete) and offline (`extract()` = reset + push + finish + pop); both give
bit-identical output because all work is done in fixed blocks of `block_frames` model frames (default 8 = 320
ms, 10 VAD chunks) whatever the push sizes. Latency: one block plus 17.5 ms of look-ahead (block_frames=4
halves the latency for ~30% more CPU; 16 saves ~20% CPU for 320 ms more; see tools/bench_features.py).

Geometry (defaults). Sample rate fs = 16 kHz; analysis hop H = 10 ms (160 samples); model frame = 4 hops = 40
ms (640 samples, 25 Hz, one per 25 fps video frame). Model frame k covers samples [640k, 640k + 640) and its
timestamp `t_ns` is the monotonic time of its first sample: t0 + k * 40 ms. Hop j is centred on sample c_j =
160 j + 80; its analysis window is the W = 25 ms (400 samples) around c_j, zero-padded before the stream start
and after `finish()`. Hop values are averaged over the 4 hops of a frame unless stated otherwise.

Columns (`names`; 22 by default):
- `mfcc_0..mfcc_12`: x'[n] = x[n] - 0.97 x[n-1]; P[k] = |FFT_512(hamming_400 . x')|^2; 40 triangular filters
  equally spaced on the HTK mel scale m(f) = 2595 log10(1 + f/700) between 20 Hz and 8 kHz, E_b = sum_k F_b[k]
  P[k]; L_b = ln max(E_b, 1e-10); c_i = sqrt(2/40) s_i sum_b L_b cos(pi i (b + 1/2) / 40), s_0 = 1/sqrt(2),
  s_i>0 = 1 (orthonormal DCT-II).
- `log_energy_db`: 10 log10 max(mean_n x[n]^2, 1e-10) over the raw window (dB re full scale; silence = -100).
- `f0_st`, `voicing_prob`, `voiced`: YIN on the signal low-passed (Kaiser-windowed sinc FIR, 1.7 kHz, 3 ms)
  and decimated to fs_p = 4 kHz (F0 <= 400 Hz needs no more). Pitch frame x: L = W_p + tau_hi samples centred
  on c_j, W_p = max(25 ms, 1 / 60 Hz) = 100, tau_hi = ceil(fs_p / 60 Hz) + 1 = 68. Difference function d(tau)
  = sum_{n < L - tau} (x[n] - x[n + tau])^2 = E[0, L - tau) + E[tau, L) - 2 r(tau), with E[a, b) the energy of
  x[a:b] and r = IFFT_256 |FFT_256 x|^2 the autocorrelation; d'(tau) = d(tau) tau / sum_{u=1..tau} d(u) (1
  where the sum is 0). Over tau in [floor(fs_p / 400 Hz), tau_hi), take the first tau with d' < 0.25 and walk
  down to its local minimum (no such tau: unvoiced, tau = argmin d'); refine by a parabola through d'(tau - 1
  .. tau + 1); F0 = fs_p / tau*. A hop is voiced when the dip exists, F0 is in [60, 400] Hz and its energy
  exceeds -60 dBFS. voicing_prob = mean over hops of max(1 - d'(tau), 0); voiced = share of voiced hops; f0_st
  = mean over voiced hops of 12 log2(F0 / 100 Hz), 0 when no hop is voiced (read it together with `voiced`).
- `zcr`: share of adjacent sample pairs in the raw window whose signs differ.
- `spectral_flux`: (1/40) sum_b max(0, L_b(j) - L_b(j-1)) on the log-mel bands above (0 for the first hop).
- `vad_speech_prob`: Silero VAD (see `edge.features.vad`) on consecutive 32 ms chunks, averaged over the frame
  weighted by each chunk's overlap with it; the LSTM state is carried across chunks and pushes.
- `snr_db`: rolling 3 s SNR estimate from hop powers and VAD speech flags (equations in
  `edge.features.audio_quality`), -10 to 60 dB.
- `clip_frac`: share of the frame's 640 samples with |x| >= 0.99.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.features.audio_config import (
    AUDIO_FEATURE_NAMES,
    VOICE_ENCODER_DIM,
    AudioConfigError,
    AudioFeatureConfig,
)
from edge.features.audio_dsp import HopAnalyser
from edge.features.audio_quality import AudioInputError, SnrTracker, clip_fraction
from edge.features.dsp_native import (
    DspLibraryError,
    NativeHopAnalyser,
    NativeTail,
    load_library,
    resolve_dsp_library,
)
from edge.features.vad import VAD_CHUNK, SileroVad
from edge.vocab import NS

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AudioFrames:
    """Model frames: row i of `values` (columns `names`) covers the frame starting at monotonic `t_ns[i]`."""

    t_ns: np.ndarray
    values: np.ndarray
    names: tuple[str, ...] = AUDIO_FEATURE_NAMES

    def __len__(self) -> int:
        return int(self.t_ns.shape[0])

    def column(self, name: str) -> np.ndarray:
        return self.values[:, self.names.index(name)]


def _vad_maps(cfg: AudioFeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """Overlap weights (frames x VAD chunks) of one block, and the VAD chunk holding each hop's centre."""
    frame, n_chunks = cfg.frame_samples, cfg.block_samples // VAD_CHUNK
    f0 = np.arange(cfg.block_frames)[:, None] * frame
    c0 = np.arange(n_chunks)[None, :] * VAD_CHUNK
    overlap = np.clip(np.minimum(f0 + frame, c0 + VAD_CHUNK) - np.maximum(f0, c0), 0, None)
    hop = cfg.hop_samples
    centres = np.arange(cfg.block_frames * cfg.hops_per_frame) * hop + hop // 2
    return (overlap / frame).astype(np.float32), centres // VAD_CHUNK


class AudioFeatureExtractor:
    """Streaming audio features: `push()` 16 kHz mono float32 chunks, `pop()` finished frames; thread-free."""

    def __init__(
        self,
        config: AudioFeatureConfig | None = None,
        *,
        vad: SileroVad | None = None,
        engines_dir: str | os.PathLike[str] | None = None,
        native_dsp: bool | None = None,
    ) -> None:
        """`native_dsp`: None runs the compiled DSP when the engines manifest lists it (else numpy, said at
        INFO); False always runs the numpy reference; True requires the compiled library."""
        self.config = config if config is not None else AudioFeatureConfig()
        cfg = self.config
        self.dsp_library = None if native_dsp is False else resolve_dsp_library(engines_dir)
        if native_dsp and self.dsp_library is None:
            raise DspLibraryError(
                "native_dsp=True, but no audio-dsp library is built: run "
                "`python tools/build_engine.py --only dsp` (it needs a C compiler)"
            )
        lib = load_library(self.dsp_library) if self.dsp_library is not None else None
        self._hops = HopAnalyser(cfg) if lib is None else NativeHopAnalyser(cfg, lib)
        if vad is None:
            vad = SileroVad(cfg.vad_model_path, threads=cfg.vad_threads, engines_dir=engines_dir)
        self._vad = vad
        self._snr = SnrTracker(
            history_hops=round(cfg.snr_history_s / cfg.hop_s),
            hops_per_frame=cfg.hops_per_frame,
            noise_quantile=cfg.snr_noise_quantile,
        )
        self._vad_weights, self._hop_chunk = _vad_maps(cfg)
        self._tail: NativeTail | None = None
        if lib is not None and isinstance(self._hops, NativeHopAnalyser):
            self._tail = NativeTail(lib, self._hops.native, cfg, self._vad_weights, self._hop_chunk, self._snr)
        self._voice = None
        self._encode_from: int | None = None  # extract(encode_from_ns=): first sample the encoder must see
        if cfg.voice_encoder:
            from edge.features.voice_encoder import VoiceEncoderColumns, VoiceEncoderConfig

            self._voice = VoiceEncoderColumns(
                VoiceEncoderConfig(block_samples=cfg.block_samples, frame_samples=cfg.frame_samples),
                engines_dir=engines_dir,
            )
            if self._voice.dim != VOICE_ENCODER_DIM:
                raise AudioConfigError(
                    f"the voice encoder's model ({self._voice.model_dir}) is {self._voice.dim} wide, the feature "
                    f"spec's columns {VOICE_ENCODER_DIM}: build the engines with Whisper tiny.en"
                )
        self.clock_resyncs = 0
        self.reset()

    @property
    def names(self) -> tuple[str, ...]:
        return self.config.names

    @property
    def vad_model_path(self) -> Path:
        """The Silero VAD graph this extractor runs (see `edge.features.vad.resolve_vad_model`)."""
        return self._vad.model_path

    @property
    def frame_period_ns(self) -> int:
        return self.config.frame_samples * NS // self.config.sample_rate

    def reset(self, t0_ns: int | None = None) -> None:
        """Start a new stream whose first sample is captured at monotonic `t0_ns` (or give it to `push`)."""
        self._buf = np.zeros(self._hops.left, np.float32)
        self._buf_start = -self._hops.left
        self._n_in = 0
        self._block = 0
        # (first sample, its monotonic time) of each stretch of the sample clock; re-anchored on clock jumps
        self._anchors: list[tuple[int, int]] = [] if t0_ns is None else [(0, int(t0_ns))]
        self._prev_log_mel: np.ndarray | None = None
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._finished = False
        self._vad.reset()
        self._snr.reset()
        if self._tail is not None:
            self._tail.reset()
        if self._voice is not None:
            self._voice.reset()

    def push(self, samples: np.ndarray, t_ns: int | None = None) -> None:
        """Append samples; `t_ns` is the monotonic capture time of their first sample (needed on the first
        push unless given to `reset`). A later `t_ns` more than `resync_tolerance_s` off the sample clock
        re-anchors frame timestamps from that sample on (counted in `clock_resyncs`)."""
        if self._finished:
            raise AudioInputError("push() after finish(): call reset() to start a new stream")
        x = np.asarray(samples)
        if x.ndim != 1 or x.dtype != np.float32:
            raise AudioInputError(
                f"push() takes mono float32 samples at 16 kHz, got {x.dtype} {x.shape}: "
                "convert with to_mono_16k()"
            )
        self._sync_clock(t_ns)
        if x.size:
            self._buf = np.concatenate([self._buf, x])
            self._n_in += x.shape[0]
            self._run(limit=None)

    def finish(self) -> None:
        """End of stream: zero-pad the tail and emit the remaining frames (the last one may be partial)."""
        if self._finished:
            return
        self._finished = True
        cfg = self.config
        n_frames = -(-self._n_in // cfg.frame_samples)
        n_blocks = -(-n_frames // cfg.block_frames)
        missing = n_blocks * cfg.block_samples + self._hops.right - (self._buf_start + self._buf.shape[0])
        if missing > 0:
            self._buf = np.concatenate([self._buf, np.zeros(missing, np.float32)])
        self._run(limit=n_frames)

    def ready(self) -> int:
        """Number of frames waiting to be popped."""
        return sum(t.shape[0] for t, _ in self._pending)

    def pop(self) -> AudioFrames:
        """All completed frames not popped yet (possibly none)."""
        if not self._pending:
            return AudioFrames(np.zeros(0, np.int64), np.zeros((0, len(self.names)), np.float32), self.names)
        t = np.concatenate([p[0] for p in self._pending])
        v = np.concatenate([p[1] for p in self._pending])
        self._pending = []
        return AudioFrames(t, v, self.names)

    def extract(self, samples: np.ndarray, t0_ns: int = 0, *, encode_from_ns: int | None = None) -> AudioFrames:
        """Offline: the frames of a whole clip (identical to streaming it). `encode_from_ns`: the voice
        encoder's columns (when configured) only for blocks holding a frame that starts at or after that time,
        zeros before it: a window that starts there reads exactly what streaming gives, at the cost of its
        blocks only (a corpus row is one window of a longer clip)."""
        self.reset(t0_ns)
        if encode_from_ns is not None:
            self._encode_from = (int(encode_from_ns) - int(t0_ns)) * self.config.sample_rate // NS
        try:
            self.push(samples)
            self.finish()
        finally:
            self._encode_from = None
        return self.pop()

    def _sync_clock(self, t_ns: int | None) -> None:
        if t_ns is None:
            if not self._anchors:
                raise AudioInputError(
                    "the first push() of a stream needs t_ns=time.monotonic_ns() at capture "
                    "(or pass t0_ns to reset())"
                )
            return
        if not self._anchors:
            self._anchors.append((self._n_in, int(t_ns)))
            return
        drift = int(t_ns) - int(self._time_of(np.array([self._n_in]))[0])
        if abs(drift) > self.config.resync_tolerance_s * NS:
            self.clock_resyncs += 1
            logger.warning("audio clock off by %.1f ms at sample %d: re-anchoring timestamps", drift / 1e6,
                           self._n_in)
            self._anchors.append((self._n_in, int(t_ns)))

    def _time_of(self, sample: np.ndarray) -> np.ndarray:
        starts = np.array([a[0] for a in self._anchors])
        times = np.array([a[1] for a in self._anchors], np.int64)
        which = np.maximum(np.searchsorted(starts, sample, side="right") - 1, 0)
        offset = sample.astype(np.int64) - starts[which]
        return times[which] + offset * NS // self.config.sample_rate

    def _run(self, limit: int | None) -> None:
        cfg, left = self.config, self._hops.left
        right = self._hops.right
        size = left + cfg.block_samples + right
        while self._buf_start + self._buf.shape[0] >= (self._block + 1) * cfg.block_samples + right:
            first = self._block * cfg.block_frames
            if limit is not None and first >= limit:
                break
            lo = self._block * cfg.block_samples - left - self._buf_start
            values = self._process_block(self._buf[lo:lo + size])
            index = first + np.arange(cfg.block_frames)
            keep = slice(None) if limit is None else index < limit
            self._pending.append((self._time_of(index * cfg.frame_samples)[keep], values[keep]))
            self._block += 1
            while len(self._anchors) > 1 and self._anchors[1][0] <= self._block * cfg.block_samples:
                self._anchors.pop(0)
            start = self._block * cfg.block_samples - left
            self._buf = self._buf[start - self._buf_start:]
            self._buf_start = start

    def _process_block(self, seg: np.ndarray) -> np.ndarray:
        values = self._block_columns(seg)
        if self._voice is None:
            return values
        cfg = self.config
        block = seg[self._hops.left : self._hops.left + cfg.block_samples]
        last_frame = (self._block + 1) * cfg.block_samples - cfg.frame_samples  # its first sample
        encode = self._encode_from is None or last_frame >= self._encode_from
        return np.concatenate([values, self._voice.process(np.ascontiguousarray(block), encode=encode)], axis=1)

    def _block_columns(self, seg: np.ndarray) -> np.ndarray:
        """The 22 columns of one block."""
        cfg, left = self.config, self._hops.left
        mfcc, log_mel, power, energy_db, zcr, f0, vprob, voiced = self._hops.analyse(seg)
        block = seg[left:left + cfg.block_samples]
        probs = self._vad.process(block)
        if self._tail is not None:
            return self._tail(probs, block)  # reads this block's analysis in place
        prev = log_mel[:1] if self._prev_log_mel is None else self._prev_log_mel
        flux = np.mean(np.maximum(np.diff(log_mel, axis=0, prepend=prev), 0.0), axis=1)
        self._prev_log_mel = log_mel[-1:].copy()
        snr = self._snr.update(power, probs[self._hop_chunk] >= cfg.vad_threshold)
        clip = clip_fraction(block.reshape(cfg.block_frames, cfg.frame_samples), cfg.clip_level)
        n, hpf = cfg.block_frames, cfg.hops_per_frame
        n_voiced = voiced.reshape(n, hpf).sum(axis=1)
        semitones = np.where(voiced, 12.0 * np.log2(f0 / 100.0), 0.0).reshape(n, hpf).sum(axis=1)
        hop_cols = np.column_stack([mfcc, energy_db, vprob, zcr, flux]).reshape(n, hpf, -1).mean(axis=1)
        k = cfg.n_mfcc
        return np.column_stack([
            hop_cols[:, :k + 1], semitones / np.maximum(n_voiced, 1), hop_cols[:, k + 1], n_voiced / hpf,
            hop_cols[:, k + 2:], self._vad_weights @ probs, snr, clip,
        ]).astype(np.float32)
