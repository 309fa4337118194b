"""TensorRT backend: a serialized plan run through TensorRT's Python runtime, device memory via cuda-python.

Torch-free. Order of trust, so that a wrong file is never handed to the deserializer (which runs native code
on its bytes): (1) the manifest key (TensorRT version, GPU name + compute capability, model hash) must match
this machine, (2) the bytes read must hash to the manifest's sha256, (3) only then `deserialize_cuda_engine`,
(4) the engine's tensor names must be the QA-MoE contract.

Device buffers are allocated once, for the plan's largest batch (its optimization profile's max); larger
requests are split into chunks of that size.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from edge.backends.base import Backend, BackendConfig, IOSpec, TensorInfo
from edge.backends.contract import check_io_names
from edge.backends.errors import (
    REBUILD,
    USE_ORT,
    BackendError,
    BackendUnavailableError,
    EngineIntegrityError,
    EngineMismatchError,
)
from edge.backends.plan_key import PlanKey, plan_mismatches
from edge.backends.probe import Environment, import_cudart, import_tensorrt, probe_environment
from edge.manifest import Artifact

log = logging.getLogger(__name__)


def read_trusted_plan(
    artifact: Artifact, engines_dir: Path, *, tensorrt_version: str, env: Environment, model_hash: str | None
) -> bytes:
    """The plan's bytes, after the key check and the sha256 check (in that order). Raises before reading
    anything when the key does not match this machine."""
    key = PlanKey.from_extra(artifact.extra, what=f"plan {artifact.name!r}")
    reasons = plan_mismatches(key, tensorrt_version=tensorrt_version, gpu=env.gpu, model_hash=model_hash)
    if reasons:
        raise EngineMismatchError(
            f"TensorRT plan {artifact.path} does not fit this machine ({'; '.join(reasons)}): {REBUILD} here "
            f"to build one for it, or {USE_ORT}"
        )
    path = engines_dir / artifact.path
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EngineIntegrityError(
            f"cannot read TensorRT plan {path} ({exc}): {REBUILD}, or {USE_ORT}"
        ) from exc
    digest = hashlib.sha256(data).hexdigest()
    if len(data) != artifact.size or digest != artifact.sha256:
        raise EngineIntegrityError(
            f"TensorRT plan {path} does not match the manifest (sha256 {digest[:16]}... != recorded "
            f"{artifact.sha256[:16]}...): altered or truncated: not loaded; {REBUILD}, or {USE_ORT}"
        )
    return data


def _cuda(result: Any, what: str) -> Any:
    """cuda-python returns (error, *values); raise on error, return the value(s)."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise BackendError(f"CUDA error {err} in {what}")
    return values[0] if len(values) == 1 else tuple(values) if values else None


class TensorRTBackend(Backend):
    name = "trt"

    def __init__(
        self,
        artifact: Artifact,
        engines_dir: Path,
        config: BackendConfig,
        *,
        env: Environment | None = None,
        model_hash: str | None = None,
    ) -> None:
        trt = import_tensorrt()
        if trt is None:
            raise BackendUnavailableError(f"TensorRT is not importable here: {USE_ORT}")
        env = env if env is not None else probe_environment(config.device_index)
        data = read_trusted_plan(
            artifact, Path(engines_dir), tensorrt_version=trt.__version__, env=env, model_hash=model_hash
        )
        cudart = import_cudart()
        if cudart is None:
            raise BackendUnavailableError(
                f"cuda-python is not installed (`pip install cuda-python`), or {USE_ORT}"
            )
        self._trt, self._cudart = trt, cudart
        self._buffers: dict[str, int] = {}
        self._stream: Any = None
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(data)
        if self._engine is None:
            raise EngineMismatchError(
                f"TensorRT could not deserialize {artifact.path}: {REBUILD}, or {USE_ORT}"
            )
        self.max_batch = int(artifact.extra.get("max_batch", 1))
        self.precision = str(artifact.extra.get("precision", "?"))
        self._io = self._engine_io(trt)
        check_io_names(self._io.input_names, self._io.output_names, source=artifact.path)
        self._context = self._engine.create_execution_context()
        self._allocate(cudart)
        log.info("trt: %s (%s, max batch %d) on %s", artifact.path, self.precision, self.max_batch, env.gpu)

    def _engine_io(self, trt: ModuleType) -> IOSpec:
        ins: list[TensorInfo] = []
        outs: list[TensorInfo] = []
        for i in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(i)
            dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(name))).name
            shape = tuple("batch" if d < 0 else int(d) for d in self._engine.get_tensor_shape(name))
            is_input = self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            (ins if is_input else outs).append(TensorInfo(name, dtype, shape))
        return IOSpec(tuple(ins), tuple(outs))

    def _allocate(self, cudart: ModuleType) -> None:
        self._stream = _cuda(cudart.cudaStreamCreate(), "cudaStreamCreate")
        for t in (*self._io.inputs, *self._io.outputs):
            shape = [self.max_batch if isinstance(d, str) else d for d in t.shape]
            nbytes = int(np.prod(shape)) * np.dtype(t.dtype).itemsize
            ptr = _cuda(cudart.cudaMalloc(max(nbytes, 1)), f"cudaMalloc({t.name})")
            self._buffers[t.name] = int(ptr)
            self._context.set_tensor_address(t.name, int(ptr))

    @property
    def io(self) -> IOSpec:
        return self._io

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch = self.check_inputs(inputs)
        chunks = [
            self._run(inputs, s, min(s + self.max_batch, batch)) for s in range(0, batch, self.max_batch)
        ]
        if len(chunks) == 1:
            return chunks[0]
        return {n: np.concatenate([c[n] for c in chunks]) for n in self._io.output_names}

    def _run(self, inputs: Mapping[str, np.ndarray], start: int, end: int) -> dict[str, np.ndarray]:
        cudart = self._cudart
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        staged = []  # host arrays must outlive the asynchronous copies
        for t in self._io.inputs:
            arr = np.ascontiguousarray(inputs[t.name][start:end], dtype=t.dtype)
            staged.append(arr)
            if not self._context.set_input_shape(t.name, arr.shape):
                raise BackendError(f"trt: input {t.name} of shape {arr.shape} is outside the plan's profile")
            _cuda(
                cudart.cudaMemcpyAsync(self._buffers[t.name], arr.ctypes.data, arr.nbytes, h2d, self._stream),
                "H2D",
            )
        if not self._context.execute_async_v3(int(self._stream)):
            raise BackendError("trt: execute_async_v3 failed (see the TensorRT log above)")
        out = {}
        for t in self._io.outputs:
            host = np.empty(tuple(self._context.get_tensor_shape(t.name)), dtype=t.dtype)
            _cuda(
                cudart.cudaMemcpyAsync(
                    host.ctypes.data, self._buffers[t.name], host.nbytes, d2h, self._stream
                ),
                "D2H",
            )
            out[t.name] = host
        _cuda(cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        return out

    def close(self) -> None:
        if self._stream is None:
            return
        for ptr in self._buffers.values():
            self._cudart.cudaFree(ptr)
        self._buffers.clear()
        self._cudart.cudaStreamDestroy(self._stream)
        self._stream = None
        self._context = self._engine = self._runtime = None
