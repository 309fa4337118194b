"""The compiled audio DSP: `edge/features/native/audio_dsp.c`, loaded with ctypes.

`tools/build_engine.py` (stage `dsp`, `qamoe/build/dsp.py`) compiles that file on the machine it runs on,
checks it against the numpy reference (`HopAnalyser.spectral`/`pitch`, `SnrTracker`), and records the library
in the manifest as `audio-dsp`. The audio extractor uses it when the manifest lists it (its sha256 is checked
first, and a mismatch is refused), else the numpy code, with one INFO line; the features are the same to
float rounding (documented in docs/FEATURES.md). No compiler is needed at run time, and nothing here imports
more than the standard library and numpy.

What runs in C: per hop, the windowed pre-emphasised frames, power, energy, zero crossings, the decimating
low-pass and YIN (`NativeHops`); per model frame, everything `AudioFeatureExtractor._process_block` does after
them: hop means, spectral flux, F0 in semitones, VAD weighting, the SNR estimate with its history, clipping
(`NativeTail`). Only the FFT stays in numpy (its `rfft` is already
fast), feeding the C log-mel and DCT; the VAD stays in ONNX Runtime.
"""

from __future__ import annotations

import ctypes
import logging
import os
from pathlib import Path

import numpy as np

from edge.assets import AssetError, default_engines_dir, resolve_artifact
from edge.errors import ModelFault
from edge.features.audio_config import PITCH_RATE, AudioFeatureConfig, audio_feature_names
from edge.features.audio_dsp import LOG_FLOOR, HopAnalyser
from edge.features.audio_quality import POWER_FLOOR, SNR_MAX_DB, SNR_MIN_DB, SnrTracker
from edge.features.cpu_isa import foreign_cpu
from edge.manifest import MANIFEST_NAME, ManifestError, load_manifest

logger = logging.getLogger(__name__)

DSP_ARTIFACT = "audio-dsp"
DSP_ABI = 3  # QA_DSP_ABI in audio_dsp.c: the qa_plan layout and the function signatures
SOURCE = Path(__file__).resolve().parent / "native" / "audio_dsp.c"

_P = ctypes.c_void_p
_I = ctypes.c_int
_D = ctypes.c_double


class DspLibraryError(ModelFault, RuntimeError):
    """The compiled audio DSP library is listed but cannot be used (altered, or built for another version):
    an engines problem (exit 4)."""


class _Plan(ctypes.Structure):
    """Mirror of `qa_plan` in audio_dsp.c."""

    _fields_ = [
        *(
            (name, _I)
            for name in (
                "n_hops",
                "win",
                "n_fft",
                "decim",
                "n_taps",
                "n_decim",
                "step",
                "plen",
                "tau_lo",
                "tau_hi",
            )
        ),
        ("decim_start", ctypes.c_long),
        ("pre", ctypes.c_float),
        *((name, _D) for name in ("silence_db", "thr", "f0_min", "f0_max", "rate", "log_floor")),
        *(
            (name, _P)
            for name in (
                "starts",
                "window",
                "taps",
                "frames",
                "y",
                "d",
                "power",
                "energy_db",
                "zcr",
                "dn",
                "f0",
                "vprob",
                "voiced",
            )
        ),
    ]


class _Tail(ctypes.Structure):
    """Mirror of `qa_tail` in audio_dsp.c."""

    _fields_ = [
        *(
            (name, _I)
            for name in (
                "n_frames",
                "hpf",
                "n_mfcc",
                "n_mels",
                "n_chunks",
                "frame_samples",
                "history",
                "min_speech",
                "has_prev",
            )
        ),
        ("n_hist", ctypes.c_long),
        *(
            (name, _D)
            for name in (
                "vad_threshold",
                "clip_level",
                "q_noise",
                "q_signal",
                "power_floor",
                "ratio_floor",
                "snr_max_db",
            )
        ),
        *((name, _P) for name in ("hop_chunk", "vad_weights", "prev_log_mel", "hist_p", "scratch", "hist_s")),
    ]


def load_library(path: Path) -> ctypes.CDLL:
    """dlopen the library and declare its functions; DspLibraryError if it is not this version's."""
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as exc:
        raise DspLibraryError(
            f"cannot load {path}: {exc}; rebuild it with `python tools/build_engine.py --force --only dsp`"
        ) from exc
    try:
        abi = int(lib.qa_dsp_abi())
    except AttributeError as exc:
        raise DspLibraryError(f"{path} is not the qamoe audio DSP library (no qa_dsp_abi)") from exc
    if abi != DSP_ABI:
        raise DspLibraryError(
            f"{path} has DSP ABI {abi}, this version needs {DSP_ABI}: "
            "rebuild it with `python tools/build_engine.py --force --only dsp`"
        )
    lib.qa_analyse.argtypes = [_P, ctypes.POINTER(_Plan)]
    lib.qa_analyse.restype = None
    lib.qa_order_stats.argtypes = [_P, _P, _P, _I, _D, _D, _P, _P, _P]
    lib.qa_order_stats.restype = None
    lib.qa_mel.argtypes = [_P, _I, _I, _I, _I, _P, _P, ctypes.c_float, _P, _P, _P]
    lib.qa_mel.restype = None
    lib.qa_tail_block.argtypes = [ctypes.POINTER(_Tail), *[_P] * 11]
    lib.qa_tail_block.restype = None
    return lib


def resolve_dsp_library(engines_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The built `audio-dsp` library when the engines manifest lists it (sha256 checked), else None."""
    root = Path(engines_dir) if engines_dir is not None else default_engines_dir()
    try:
        listed = DSP_ARTIFACT in load_manifest(root / MANIFEST_NAME, missing_ok=True).names()
    except ManifestError as exc:
        raise DspLibraryError(f"cannot read the engines manifest in {root}: {exc}") from exc
    if not listed:
        logger.info(
            "audio DSP: %s has no %s artifact; using the numpy code (slower; build it with "
            "`python tools/build_engine.py --only dsp`)",
            root,
            DSP_ARTIFACT,
        )
        return None
    try:
        artifact, path = resolve_artifact(DSP_ARTIFACT, root)
    except AssetError as exc:
        raise DspLibraryError(str(exc)) from exc
    missing = foreign_cpu(artifact.extra)
    if missing:
        logger.warning(
            "audio DSP: %s was compiled for another CPU (%s); using the numpy code (rebuild it here "
            "with `python tools/build_engine.py --force --only dsp`)",
            path,
            missing,
        )
        return None
    return path


def _ptr(a: np.ndarray) -> int:
    return int(a.ctypes.data)


class NativeHops:
    """The C analysis of one `HopAnalyser` geometry: buffers allocated once, one call per block."""

    def __init__(self, lib: ctypes.CDLL, hops: HopAnalyser) -> None:
        cfg = hops.cfg
        n = hops.spec_idx.shape[0]
        self._lib = lib
        self._keep: dict[str, np.ndarray] = {
            "starts": np.ascontiguousarray(hops.spec_idx[:, 0], np.int64),
            "window": np.ascontiguousarray(hops.window, np.float32),
            "taps": np.ascontiguousarray(hops.poly.T.reshape(-1), np.float32),  # h[D m + p] = poly[p, m]
            "frames": np.zeros((n, cfg.n_fft), np.float32),
            "y": np.zeros(hops.n_decim, np.float32),
            "d": np.zeros(hops.tau_hi + 1, np.float32),
            "dn": np.zeros(hops.tau_hi + 1),
            **{name: np.zeros(n) for name in ("power", "energy_db", "zcr", "f0", "vprob")},
            "voiced": np.zeros(n, np.uint8),
        }
        if ctypes.sizeof(ctypes.c_long) != 8:
            raise DspLibraryError("the compiled audio DSP needs a 64-bit C long (LP64); use the numpy code")
        step = int(hops.pitch_idx[1, 0] - hops.pitch_idx[0, 0]) if n > 1 else 0
        self._plan = _Plan(
            n_hops=n,
            win=cfg.win_samples,
            n_fft=cfg.n_fft,
            decim=hops.decim,
            n_taps=self._keep["taps"].size,
            n_decim=hops.n_decim,
            step=step,
            plen=hops.plen,
            tau_lo=hops.tau_lo,
            tau_hi=hops.tau_hi,
            decim_start=int(hops.decim_start),
            pre=cfg.preemphasis,
            silence_db=cfg.silence_db,
            thr=cfg.yin_threshold,
            f0_min=cfg.f0_min_hz,
            f0_max=cfg.f0_max_hz,
            rate=float(PITCH_RATE),
            log_floor=LOG_FLOOR,
            **{name: _ptr(a) for name, a in self._keep.items()},
        )
        self._plan_ref = ctypes.byref(self._plan)
        self._seg_len = hops.left + cfg.block_samples + hops.right
        n_bins = cfg.n_fft // 2 + 1
        self._mel = {
            "fb_t": np.ascontiguousarray(hops.fb_t, np.float32),
            "dct_t": np.ascontiguousarray(hops.dct_t, np.float32),
            "bin_power": np.zeros(n_bins, np.float32),
            "log_mel": np.zeros((n, cfg.n_mels), np.float32),
            "mfcc": np.zeros((n, cfg.n_mfcc), np.float32),
        }
        m = self._mel
        pointers = (_ptr(m[name]) for name in ("fb_t", "dct_t", "bin_power", "log_mel", "mfcc"))
        fb_t, dct_t, bin_power, log_mel, mfcc = pointers
        self._mel_args = (n, n_bins, cfg.n_mels, cfg.n_mfcc, fb_t, dct_t, LOG_FLOOR, bin_power, log_mel, mfcc)
        self._spec_shape = (n, n_bins)

    def analyse(self, seg: np.ndarray) -> tuple[np.ndarray, ...]:
        """(frames, power, energy_db, zcr, f0, vprob, voiced) of one block: this object's buffers, valid
        until the next call (`voiced` as uint8)."""
        if seg.dtype != np.float32 or seg.ndim != 1 or seg.shape[0] != self._seg_len:
            raise ValueError(f"a block is {self._seg_len} float32 samples, got {seg.dtype} {seg.shape}")
        seg = np.ascontiguousarray(seg)
        self._lib.qa_analyse(_ptr(seg), self._plan_ref)
        k = self._keep
        return k["frames"], k["power"], k["energy_db"], k["zcr"], k["f0"], k["vprob"], k["voiced"]

    def mel(self, spec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(MFCC, log-mel) of each hop from its spectrum (`np.fft.rfft` of the frames): this object's
        buffers, valid until the next call."""
        spec = np.ascontiguousarray(spec, np.complex64)
        if spec.shape != self._spec_shape:
            raise ValueError(f"spectra of shape {self._spec_shape} expected, got {spec.shape}")
        self._lib.qa_mel(_ptr(spec), *self._mel_args)
        return self._mel["mfcc"], self._mel["log_mel"]

    def buffer(self, name: str) -> int:
        """Address of one of the per-hop output buffers (for `NativeTail`)."""
        return _ptr(self._keep[name] if name in self._keep else self._mel[name])


class NativeHopAnalyser(HopAnalyser):
    """`HopAnalyser` whose `analyse` runs the compiled kernels (`native`: its `NativeHops`); only the FFT stays
    in numpy. The numpy `spectral()` and `pitch()` stay available as the reference."""

    def __init__(self, cfg: AudioFeatureConfig, lib: ctypes.CDLL) -> None:
        """`lib`: the compiled DSP library (`load_library`)."""
        super().__init__(cfg)
        self.native = NativeHops(lib, self)

    def analyse(self, seg: np.ndarray) -> tuple[np.ndarray, ...]:
        """As `HopAnalyser.analyse`, but the arrays are the kernels' buffers, valid until the next call."""
        frames, power, energy_db, zcr, f0, vprob, voiced = self.native.analyse(seg)  # buffers of `native`
        mfcc, log_mel = self.native.mel(np.fft.rfft(frames, axis=1))
        return mfcc, log_mel, power, energy_db, zcr, f0, vprob, voiced.view(bool)


class NativeTail:
    """`qa_tail_block`: one block's model frames from its per-hop analysis, with the stream state (previous
    log-mel, SNR history) kept in C-visible buffers. Reads the per-hop outputs of `hops` in place."""

    def __init__(
        self,
        lib: ctypes.CDLL,
        hops: NativeHops,
        cfg: AudioFeatureConfig,
        vad_weights: np.ndarray,
        hop_chunk: np.ndarray,
        snr: SnrTracker,
    ) -> None:
        """`snr`: the numpy tracker this replaces, whose settings it takes (its own state is not used)."""
        history, q_noise, q_signal, min_speech = snr.settings
        n_hops = cfg.block_frames * cfg.hops_per_frame
        self._lib = lib
        self._keep: dict[str, np.ndarray] = {
            "hop_chunk": np.ascontiguousarray(hop_chunk, np.int64),
            "vad_weights": np.ascontiguousarray(vad_weights, np.float32),
            "prev_log_mel": np.zeros(cfg.n_mels, np.float32),
            "hist_p": np.zeros(history + n_hops),
            "scratch": np.zeros(history),
            "hist_s": np.zeros(history + n_hops, np.uint8),
        }
        self._tail = _Tail(
            n_frames=cfg.block_frames,
            hpf=cfg.hops_per_frame,
            n_mfcc=cfg.n_mfcc,
            n_mels=cfg.n_mels,
            n_chunks=vad_weights.shape[1],
            frame_samples=cfg.frame_samples,
            history=history,
            min_speech=min_speech,
            has_prev=0,
            n_hist=0,
            vad_threshold=cfg.vad_threshold,
            clip_level=cfg.clip_level,
            q_noise=q_noise,
            q_signal=q_signal,
            power_floor=POWER_FLOOR,
            ratio_floor=10.0 ** (SNR_MIN_DB / 10.0),
            snr_max_db=SNR_MAX_DB,
            **{name: _ptr(a) for name, a in self._keep.items()},
        )
        self._ref = ctypes.byref(self._tail)
        names = ("mfcc", "log_mel", "energy_db", "vprob", "zcr", "f0", "voiced", "power")
        self._hops = tuple(hops.buffer(n) for n in names)
        self._shape = (cfg.block_frames, len(audio_feature_names(cfg.n_mfcc)))  # DSP columns, not the voice encoder's
        self._n_chunks = vad_weights.shape[1]

    def reset(self) -> None:
        self._tail.has_prev = 0
        self._tail.n_hist = 0

    def __call__(self, probs: np.ndarray, block: np.ndarray) -> np.ndarray:
        """The block's frames (n_frames x features, float32) from its VAD probabilities and samples, after
        `hops.analyse()` and `hops.mel()` of the same block (their outputs are read in place)."""
        probs = np.ascontiguousarray(probs, np.float32)
        block = np.ascontiguousarray(block, np.float32)
        if probs.shape != (self._n_chunks,) or block.size != self._shape[0] * self._tail.frame_samples:
            raise ValueError(
                f"one block's VAD probabilities and samples expected, got {probs.shape} {block.shape}"
            )
        out = np.empty(self._shape, np.float32)
        self._lib.qa_tail_block(self._ref, *self._hops, _ptr(probs), _ptr(block), _ptr(out))
        return out


class NativeOrderStats:
    """`qa_order_stats`: the SNR tracker's two order statistics per window (exact, as numpy's partition)."""

    def __init__(self, lib: ctypes.CDLL, max_window: int) -> None:
        self._lib = lib
        self._scratch = np.zeros(max_window)

    def __call__(
        self, power: np.ndarray, starts: np.ndarray, ends: np.ndarray, q_noise: float, q_signal: float
    ) -> tuple[np.ndarray, np.ndarray]:
        power = np.ascontiguousarray(power, np.float64)
        starts = np.ascontiguousarray(starts, np.int64)
        ends = np.ascontiguousarray(ends, np.int64)
        if starts.size and (
            int((ends - starts).max()) > self._scratch.size
            or int(starts.min()) < 0
            or int(ends.max()) > power.size
        ):
            raise ValueError("order-statistics windows outside the power history")
        noise, loud = np.empty(starts.size), np.empty(starts.size)
        self._lib.qa_order_stats(
            _ptr(power),
            _ptr(starts),
            _ptr(ends),
            starts.size,
            q_noise,
            q_signal,
            _ptr(self._scratch),
            _ptr(noise),
            _ptr(loud),
        )
        return noise, loud
