"""What this machine offers for inference: onnxruntime providers, TensorRT, cuda-python and the GPU.

Every import here is guarded: a machine without a GPU, TensorRT or cuda-python gets an `Environment` that says
so (with the reason), never an ImportError. Torch is never imported.
"""

from __future__ import annotations

import importlib
import logging
import shutil
import subprocess
from dataclasses import dataclass
from types import ModuleType

from edge.backends.plan_key import GpuInfo

log = logging.getLogger(__name__)

_NVIDIA_SMI_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Environment:
    """The inputs of backend selection. `tensorrt_version` None means `import tensorrt` failed; `gpu` None
    means no CUDA device was found; `notes` carries the reasons, for logs."""

    ort_providers: tuple[str, ...] = ("CPUExecutionProvider",)
    tensorrt_version: str | None = None
    cudart: bool = False
    gpu: GpuInfo | None = None
    notes: tuple[str, ...] = ()

    def describe(self) -> str:
        gpu = self.gpu.describe() if self.gpu else "no GPU"
        trt = f"TensorRT {self.tensorrt_version}" if self.tensorrt_version else "no TensorRT"
        return (
            f"{gpu}; {trt}; cuda-python {'yes' if self.cudart else 'no'}; ORT {', '.join(self.ort_providers)}"
        )


def import_cudart() -> ModuleType | None:
    """cuda-python's runtime bindings (new `cuda.bindings.runtime`, else the older `cuda.cudart`), or None."""
    for name in ("cuda.bindings.runtime", "cuda.cudart"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


def import_tensorrt() -> ModuleType | None:
    try:
        return importlib.import_module("tensorrt")
    except Exception as exc:  # noqa: BLE001
        # blind on purpose: a broken install raises whatever its import-time library loading does (OSError,
        # RuntimeError, AttributeError on a version mismatch ...); each means "no TensorRT": fall back to ORT
        log.debug("tensorrt not importable: %s", exc)
        return None


def gpu_from_cudart(cudart: ModuleType, index: int = 0) -> GpuInfo | None:
    err, count = cudart.cudaGetDeviceCount()
    if int(err) != 0 or count <= index:
        return None
    err, prop = cudart.cudaGetDeviceProperties(index)
    if int(err) != 0:
        return None
    name = prop.name.decode(errors="replace") if isinstance(prop.name, bytes) else str(prop.name)
    return GpuInfo(name.rstrip("\x00").strip(), f"{prop.major}.{prop.minor}", index)


def gpu_from_nvidia_smi(index: int = 0) -> GpuInfo | None:
    """Fallback where cuda-python is absent (desktop drivers; Jetsons have no full nvidia-smi)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = (
            subprocess.run(
                [exe, "--query-gpu=name,compute_cap", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=_NVIDIA_SMI_TIMEOUT_S,
                check=True,
            )
            .stdout.strip()
            .splitlines()
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("nvidia-smi failed: %s", exc)
        return None
    if len(out) <= index:
        return None
    name, _, cc = out[index].rpartition(",")
    try:
        return GpuInfo(name.strip(), cc.strip(), index)
    except ValueError:
        return None


def ort_providers() -> tuple[str, ...]:
    try:
        import onnxruntime as ort
    except ImportError:
        return ()
    return tuple(ort.get_available_providers())


def probe_environment(device_index: int = 0) -> Environment:
    notes = []
    trt = import_tensorrt()
    if trt is None:
        notes.append("`import tensorrt` failed (TensorRT is not installed for this Python)")
    cudart = import_cudart()
    gpu = None
    if cudart is not None:
        try:
            gpu = gpu_from_cudart(cudart, device_index)
        except Exception as exc:  # noqa: BLE001
            # blind on purpose: with no usable driver the bindings raise from inside their loader, in types that
            # vary with the cuda-python version; the probe turns any of them into a note, not a failed start
            notes.append(f"cuda-python found no usable driver ({exc})")
    else:
        notes.append("cuda-python is not installed (`pip install cuda-python`)")
    if gpu is None:
        gpu = gpu_from_nvidia_smi(device_index)
    if gpu is None:
        notes.append("no CUDA GPU found")
    env = Environment(
        ort_providers=ort_providers(),
        tensorrt_version=getattr(trt, "__version__", None) if trt is not None else None,
        cudart=cudart is not None,
        gpu=gpu,
        notes=tuple(notes),
    )
    log.debug("environment: %s", env.describe())
    return env
