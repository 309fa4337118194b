"""Silero VAD (the ONNX model that ships inside the faster-whisper wheel), run with onnxruntime.

Which graph: `tools/build_engine.py` (stage `vad`) rewrites the wheel's graph as channels-last GEMMs, same
weights, ~2x faster on a CPU (`qamoe/build/vad.py`), and records it in the manifest as `silero-vad-v6`. The
default model is that artifact when the engines manifest lists it (refused if its sha256 does not match), else
the wheel's own graph from the installed faster-whisper package (same function; the two agree to float
rounding, <= 1e-4 on the probabilities, checked at build time).

The model (`silero_vad_v6.onnx`) takes 16 kHz float32 audio as rows of 576 samples: the last 64 samples of the
previous 512-sample chunk (zeros before the first chunk) followed by the 512 new samples. Its input is `input
[n_chunks, 576]`, `h [1, 1, 128]`, `c [1, 1, 128]`; its outputs are one speech probability per chunk and the
new LSTM state (`hn`, `cn`). The rows of one call are consecutive chunks of a single stream (the LSTM runs
over them in order), so a stream can be fed in any number of calls as long as the state and the 64-sample
context are carried over, which this class does.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

import numpy as np

from edge.assets import AssetError, default_engines_dir, resolve_artifact
from edge.errors import ModelFault
from edge.manifest import MANIFEST_NAME, ManifestError, load_manifest

logger = logging.getLogger(__name__)

VAD_CHUNK = 512
VAD_CONTEXT = 64
_STATE_SHAPE = (1, 1, 128)
_ASSET = "silero_vad_v6.onnx"
VAD_ARTIFACT = "silero-vad-v6"  # the GEMM rewrite built by tools/build_engine.py


class VadModelError(ModelFault, RuntimeError):
    """The Silero VAD model could not be found or loaded (exit 4)."""


def default_vad_model_path() -> Path:
    """Locate `silero_vad_v6.onnx` inside the installed faster-whisper package, without importing it."""
    spec = importlib.util.find_spec("faster_whisper")
    if spec is None or not spec.submodule_search_locations:
        raise VadModelError(
            "faster-whisper is not installed, and its wheel carries the Silero VAD model: "
            "run `pip install faster-whisper` or pass AudioFeatureConfig(vad_model_path=...)"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "assets" / _ASSET
        if candidate.is_file():
            return candidate
    raise VadModelError(
        f"{_ASSET} not found under faster_whisper/assets: reinstall faster-whisper (>= 1.1) "
        "or pass AudioFeatureConfig(vad_model_path=...)"
    )


def resolve_vad_model(engines_dir: str | os.PathLike[str] | None = None) -> Path:
    """The built `silero-vad-v6` artifact when the engines manifest lists it (sha256 checked), else the graph
    inside the installed faster-whisper package."""
    root = Path(engines_dir) if engines_dir is not None else default_engines_dir()
    try:
        listed = VAD_ARTIFACT in load_manifest(root / MANIFEST_NAME, missing_ok=True).names()
    except ManifestError as exc:
        raise VadModelError(f"cannot read the engines manifest in {root}: {exc}") from exc
    if listed:
        try:
            return resolve_artifact(VAD_ARTIFACT, root)[1]
        except AssetError as exc:
            raise VadModelError(str(exc)) from exc
    path = default_vad_model_path()
    logger.info("Silero VAD: %s has no %s artifact; using %s (about 2x slower; build it with "
                "`python tools/build_engine.py --only vad`)", root, VAD_ARTIFACT, path)
    return path


class SileroVad:
    """Streaming Silero VAD: feed consecutive 512-sample chunks, get one speech probability per chunk."""

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        threads: int = 1,
        engines_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        import onnxruntime as ort  # local: keeps `import edge.features` light

        path = Path(model_path) if model_path is not None else resolve_vad_model(engines_dir)
        if not path.is_file():
            raise VadModelError(f"VAD model {path} does not exist: pass the path of silero_vad_v6.onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise VadModelError(f"cannot load VAD model {path}: {exc}") from exc
        names = {i.name for i in self._session.get_inputs()}
        if names != {"input", "h", "c"}:
            raise VadModelError(f"{path} has inputs {sorted(names)}; Silero v5/v6 has input, h, c")
        self.model_path = path
        logger.debug("loaded Silero VAD from %s (%d thread(s))", path, threads)
        self.reset()

    def reset(self) -> None:
        """Forget the stream: zero LSTM state and context."""
        self._h = np.zeros(_STATE_SHAPE, np.float32)
        self._c = np.zeros(_STATE_SHAPE, np.float32)
        self._context = np.zeros(VAD_CONTEXT, np.float32)

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Speech probability of each consecutive 512-sample chunk of `samples` (length a multiple of 512)."""
        n = samples.shape[0] // VAD_CHUNK
        if samples.ndim != 1 or n * VAD_CHUNK != samples.shape[0]:
            raise ValueError(f"VAD input must be 1-D, a multiple of {VAD_CHUNK} samples; got {samples.shape}")
        if n == 0:
            return np.zeros(0, np.float32)
        chunks = samples.astype(np.float32, copy=False).reshape(n, VAD_CHUNK)
        rows = np.empty((n, VAD_CONTEXT + VAD_CHUNK), np.float32)
        rows[:, VAD_CONTEXT:] = chunks
        rows[0, :VAD_CONTEXT] = self._context
        rows[1:, :VAD_CONTEXT] = chunks[:-1, -VAD_CONTEXT:]
        probs, self._h, self._c = self._session.run(None, {"input": rows, "h": self._h, "c": self._c})
        self._context = chunks[-1, -VAD_CONTEXT:].copy()
        return np.asarray(probs, np.float32).reshape(n)
