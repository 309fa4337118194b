"""ONNX Runtime backend: CPU everywhere; the CUDA or TensorRT execution provider where present.

Session options are tuned for latency on a graph of a few hundred small ops: sequential execution (no
inter-op parallelism to schedule), every graph optimisation (fusions cut the per-node overhead, which matters
at this size), a configurable number of intra-op threads and no spinning by default (the edge device also
runs capture and ASR).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge.backends.base import Backend, BackendConfig, IOSpec, TensorInfo
from edge.backends.contract import check_io_names
from edge.backends.errors import BackendError, BackendUnavailableError

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
_ORT_DTYPES = {
    "float": "float32",
    "float16": "float16",
    "double": "float64",
    "bool": "bool",
    "int64": "int64",
}


def session_options(config: BackendConfig) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = config.intra_op_threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if config.allow_spinning else "0")
    so.log_severity_level = 3  # ORT's warnings about provider fallbacks are reported by us, once
    return so


def provider_options(providers: Sequence[str], config: BackendConfig, cache_dir: Path | None) -> list[Any]:
    """(name, options) pairs: the GPU providers on `config.device_index`; ORT-TRT caches its engines."""
    out: list[Any] = []
    for p in providers:
        if p == CUDA:
            out.append((p, {"device_id": config.device_index}))
        elif p == TENSORRT:
            opts: dict[str, Any] = {
                "device_id": config.device_index,
                "trt_fp16_enable": config.precision != "fp32",
            }
            if cache_dir is not None:
                opts.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(cache_dir))
            out.append((p, opts))
        else:
            out.append(p)
    return out


class OrtBackend(Backend):
    """An InferenceSession over a QA-MoE ONNX file. `providers` in priority order (CPU last)."""

    def __init__(
        self,
        path: str | Path,
        config: BackendConfig,
        *,
        providers: Sequence[str] = (CPU,),
        trt_cache_dir: Path | None = None,
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendUnavailableError("onnxruntime is not installed: `pip install onnxruntime`") from exc
        available = set(ort.get_available_providers())
        absent = [p for p in providers if p not in available]
        if absent:
            raise BackendUnavailableError(
                f"onnxruntime here lacks {absent} (it has {sorted(available)}): install onnxruntime-gpu, "
                "or pass `--backend ort-cpu`"
            )
        self.path = Path(path)
        try:
            self._sess = ort.InferenceSession(
                str(self.path),
                session_options(config),
                providers=provider_options(providers, config, trt_cache_dir),
            )
        except Exception as exc:  # ORT raises its own exception types for unreadable or invalid models
            raise BackendError(f"onnxruntime cannot load {self.path}: {exc}") from exc
        self._io = IOSpec(
            tuple(_info(a) for a in self._sess.get_inputs()),
            tuple(_info(a) for a in self._sess.get_outputs()),
        )
        check_io_names(self._io.input_names, self._io.output_names, source=str(self.path))
        self._out_names = list(self._io.output_names)
        self.providers = tuple(self._sess.get_providers())
        self.name = (
            "ort-cuda" if CUDA in self.providers else "ort-trt" if TENSORRT in self.providers else "ort-cpu"
        )
        if providers[0] != CPU and self.providers[0] == CPU:
            log.warning(
                "onnxruntime fell back to the CPU (asked for %s): check the CUDA install", providers[0]
            )
        log.info("%s: %s on %s", self.name, self.path.name, ", ".join(self.providers))

    @property
    def io(self) -> IOSpec:
        return self._io

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.check_inputs(inputs)
        try:
            values = self._sess.run(self._out_names, dict(inputs))
        except Exception as exc:  # wrong dtype/shape: ORT's InvalidArgument and friends
            raise BackendError(f"{self.name}: inference failed: {exc}") from exc
        return dict(zip(self._out_names, values, strict=True))

    def close(self) -> None:
        self._sess = None  # releases the session's memory arena


def _info(arg: Any) -> TensorInfo:
    dtype = str(arg.type).removeprefix("tensor(").removesuffix(")")
    shape = tuple(d if isinstance(d, int) else str(d) for d in arg.shape)
    return TensorInfo(arg.name, _ORT_DTYPES.get(dtype, dtype), shape)
