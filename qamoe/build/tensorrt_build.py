"""TensorRT plan building for the QA-MoE ONNX, behind guarded imports (TensorRT and cuda-python are optional).

Written against the TensorRT 10 Python API and kept compatible with TensorRT 8.5/8.6 (JetPack 5): the
explicit-batch network flag is set only where it still exists and matters (< 10), the workspace is a memory
pool limit. The pure pieces (optimization-profile shapes, calibration batches, Q/DQ detection) are tested
without TensorRT; the rest runs only where `tensorrt` imports and a GPU is present.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from edge.backends.plan_key import PRECISIONS
from edge.backends.probe import import_cudart, import_tensorrt
from qamoe.build.errors import BuildConfigError, ConversionError
from qamoe.build.wheels import write_bytes_atomic

log = logging.getLogger(__name__)

Window = Mapping[str, np.ndarray]
Shape = tuple[int, ...]


@dataclass(frozen=True)
class TrtBuildSettings:
    precision: str = "fp16"
    min_batch: int = 1
    opt_batch: int = 1
    max_batch: int = 32
    workspace_mib: int = 1024
    calib_batch: int = 8

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise BuildConfigError(
                f"precision {self.precision!r} unknown: use one of {', '.join(PRECISIONS)}"
            )
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise BuildConfigError(
                "need 1 <= min_batch <= opt_batch <= max_batch, got "
                f"{self.min_batch}/{self.opt_batch}/{self.max_batch}"
            )
        if self.workspace_mib <= 0 or self.calib_batch <= 0:
            raise BuildConfigError("workspace_mib and calib_batch must be positive")


def profile_shapes(
    window_shapes: Mapping[str, Shape], s: TrtBuildSettings
) -> dict[str, tuple[Shape, Shape, Shape]]:
    """(min, opt, max) per input: the batch axis from the settings, every other axis fixed by the window."""
    return {
        name: tuple((b, *shape[1:]) for b in (s.min_batch, s.opt_batch, s.max_batch))  # type: ignore[misc]
        for name, shape in window_shapes.items()
    }


def calibration_batches(windows: Window, batch: int) -> list[dict[str, np.ndarray]]:
    """Real feature windows cut into full batches of `batch` (a ragged tail is dropped: the calibrator's batch
    size is fixed), each array C-contiguous in the dtype it is fed with."""
    n = len(next(iter(windows.values())))
    return [
        {k: np.ascontiguousarray(v[i : i + batch]) for k, v in windows.items()}
        for i in range(0, n - batch + 1, batch)
    ]


def has_qdq(onnx_path: Path) -> bool:
    """Explicitly quantized graphs (QuantizeLinear/DequantizeLinear) build INT8 without a calibrator."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in graph.node)


def _cuda(result: Any, what: str) -> Any:
    err, *values = result
    if int(err) != 0:
        raise ConversionError(f"CUDA error {err} in {what}")
    return values[0] if len(values) == 1 else None


def make_calibrator(trt: ModuleType, cudart: ModuleType, batches: Sequence[Window], cache: Path) -> Any:
    """An IInt8EntropyCalibrator2 feeding `batches` from device buffers; the scales are cached in `cache`
    (per model hash / device, see the caller) so a rebuild does not recalibrate."""

    class _Calibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._iter: Iterator[Window] = iter(batches)
            first = batches[0]
            self._size = len(next(iter(first.values())))
            self._device = {
                k: int(_cuda(cudart.cudaMalloc(max(v.nbytes, 1)), "cudaMalloc")) for k, v in first.items()
            }

        def get_batch_size(self) -> int:
            return self._size

        def get_batch(self, names: list[str], *args: Any) -> list[int] | None:
            window = next(self._iter, None)
            if window is None:
                return None
            kind = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
            for name in names:
                arr = window[name]
                _cuda(cudart.cudaMemcpy(self._device[name], arr.ctypes.data, arr.nbytes, kind), "cudaMemcpy")
            return [self._device[name] for name in names]

        def read_calibration_cache(self, *args: Any) -> bytes | None:
            return cache.read_bytes() if cache.is_file() else None

        def write_calibration_cache(self, data: Any) -> None:
            write_bytes_atomic(cache, bytes(data))

        def free(self) -> None:
            for ptr in self._device.values():
                cudart.cudaFree(ptr)
            self._device.clear()

    return _Calibrator()


def _parse(trt: ModuleType, logger: Any, onnx_path: Path) -> tuple[Any, Any, Any]:
    builder = trt.Builder(logger)
    major = int(trt.__version__.split(".")[0])
    flags = 0
    if major < 10:  # explicit batch is the only mode from TensorRT 10 on (the flag is deprecated there)
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise ConversionError(f"TensorRT's ONNX parser rejected {onnx_path.name}: {'; '.join(errors[:5])}")
    return builder, network, parser


def build_plan(
    onnx_path: Path,
    plan_path: Path,
    settings: TrtBuildSettings,
    *,
    window_shapes: Mapping[str, Shape],
    timing_cache: Path,
    calib: Sequence[Window] = (),
    calib_cache: Path | None = None,
) -> None:
    """Parse the ONNX, build a serialized plan at `plan_path` with one optimization profile over the batch,
    reusing and updating `timing_cache`. Raises ConversionError on any failure."""
    trt, cudart = import_tensorrt(), import_cudart()
    if trt is None or cudart is None:
        raise ConversionError(
            "build_plan needs `tensorrt` and cuda-python: check the environment probe first"
        )
    logger = trt.Logger(trt.Logger.WARNING)
    builder, network, _parser = _parse(trt, logger, onnx_path)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_mib << 20)
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in profile_shapes(window_shapes, settings).items():
        profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(profile)
    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    calibrator = _configure_precision(trt, cudart, config, profile, settings, onnx_path, calib, calib_cache)
    try:
        serialized = builder.build_serialized_network(network, config)
    finally:
        if calibrator is not None:
            calibrator.free()
    if serialized is None:
        raise ConversionError(
            f"TensorRT failed to build a {settings.precision} plan from {onnx_path.name} (see log)"
        )
    write_bytes_atomic(plan_path, bytes(serialized))
    write_bytes_atomic(timing_cache, bytes(cache.serialize()))
    log.info(
        "model: TensorRT %s plan %s (%d bytes)", settings.precision, plan_path.name, plan_path.stat().st_size
    )


def _configure_precision(
    trt: ModuleType,
    cudart: ModuleType,
    config: Any,
    profile: Any,
    settings: TrtBuildSettings,
    onnx_path: Path,
    calib: Sequence[Window],
    calib_cache: Path | None,
) -> Any:
    """FP16/INT8 builder flags; for implicit INT8, a calibrator over `calib` (returned so it can be freed)."""
    if settings.precision == "fp32":
        return None
    config.set_flag(
        trt.BuilderFlag.FP16
    )  # INT8 layers without a fast INT8 kernel fall back to FP16, not FP32
    if settings.precision == "fp16":
        return None
    config.set_flag(trt.BuilderFlag.INT8)
    if has_qdq(onnx_path):
        log.info("model: explicit Q/DQ graph: INT8 scales come from the graph, no calibration")
        return None
    if not calib or calib_cache is None:
        raise BuildConfigError("INT8 needs calibration windows: pass `--calib-shards DIR` (feature shards)")
    calibrator = make_calibrator(trt, cudart, calib, calib_cache)
    config.int8_calibrator = calibrator
    config.set_calibration_profile(profile)
    return calibrator
