"""`--backend auto|trt|ort|ort-cpu|ort-cuda`: which backend runs the model here, and why.

`select_backend` is a pure function of (what was asked, the machine's `Environment`, the manifest's
artifacts), so every branch is unit-tested without a GPU. `open_backend` probes the machine, selects, logs
the choice with its reason, checks the chosen file against the manifest and opens it.

auto: a TensorRT plan whose key matches this GPU + TensorRT version + the ONNX's model, else ORT with the CUDA
provider on a GPU, else ORT on the CPU.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from edge.assets import default_engines_dir
from edge.backends.base import Backend, BackendConfig
from edge.backends.contract import check_io_shapes, spec_input_shapes
from edge.backends.errors import (
    REBUILD,
    USE_ORT,
    BackendError,
    BackendUnavailableError,
    EngineIntegrityError,
    EngineMismatchError,
)
from edge.backends.ort import CPU, CUDA, TENSORRT
from edge.backends.plan_key import ONNX_KIND, PLAN_KIND, PlanKey, plan_mismatches
from edge.backends.probe import Environment, probe_environment
from edge.manifest import MANIFEST_NAME, Artifact, load_manifest, verify_artifact

log = logging.getLogger(__name__)

_PRECISION_ORDER = ("fp16", "fp32", "int8")


@dataclass(frozen=True)
class Selection:
    """kind "trt" or "ort"; label as logged ("trt", "ort-cuda", "ort-cpu", "ort-trt"); artifact: manifest
    name of the file to open; providers: ORT providers in priority order (empty for trt)."""

    kind: str
    label: str
    artifact: str
    providers: tuple[str, ...]
    reason: str


def _onnx(artifacts: Sequence[Artifact], model: str) -> Artifact | None:
    return next((a for a in artifacts if a.name == model and a.kind == ONNX_KIND), None)


def matching_plan(
    env: Environment, artifacts: Sequence[Artifact], model_hash: str | None, precision: str | None
) -> tuple[Artifact | None, str]:
    """(the best plan that runs here, or None; a reason for the log / error)."""
    plans = [a for a in artifacts if a.kind == PLAN_KIND]
    if not plans:
        return None, "no TensorRT plan in the manifest"
    fits, rejected = [], []
    for plan in plans:
        try:
            reasons = plan_mismatches(
                PlanKey.from_extra(plan.extra, what=plan.name),
                tensorrt_version=env.tensorrt_version,
                gpu=env.gpu,
                model_hash=model_hash,
            )
        except (EngineMismatchError, ValueError) as exc:
            reasons = [str(exc)]
        (rejected.append(f"{plan.name}: {'; '.join(reasons)}") if reasons else fits.append(plan))
    if not fits:
        return None, "no TensorRT plan fits this machine (" + " | ".join(rejected) + ")"
    order = ([precision] if precision else []) + list(_PRECISION_ORDER)
    fits.sort(
        key=lambda a: order.index(str(a.extra.get("precision"))) if a.extra.get("precision") in order else 99
    )
    if precision and fits[0].extra.get("precision") != precision:
        return None, f"no {precision} TensorRT plan fits this machine (fitting: {[a.name for a in fits]})"
    return fits[0], f"TensorRT plan {fits[0].name} matches {env.gpu.describe() if env.gpu else '?'}"


def _trt_blocker(env: Environment) -> str | None:
    if env.tensorrt_version is None:
        return "TensorRT is not importable"
    if not env.cudart:
        return "cuda-python is not installed"
    if env.gpu is None:
        return "no CUDA GPU is visible"
    return None


def _ort(label: str, onnx: Artifact | None, providers: tuple[str, ...], reason: str) -> Selection:
    if onnx is None:
        raise BackendError(f"no ONNX model in the manifest for {label}: {REBUILD}")
    return Selection("ort", label, onnx.name, providers, reason)


def select_backend(
    requested: str,
    env: Environment,
    artifacts: Sequence[Artifact],
    *,
    model: str = "qamoe",
    precision: str | None = None,
) -> Selection:
    onnx = _onnx(artifacts, model)
    model_hash = str(onnx.extra["model_hash"]) if onnx is not None and "model_hash" in onnx.extra else None
    cuda_ok = env.gpu is not None and CUDA in env.ort_providers
    if requested in ("trt", "auto"):
        blocker = _trt_blocker(env)
        plan, why = (None, blocker) if blocker else matching_plan(env, artifacts, model_hash, precision)
        if plan is not None:
            return Selection("trt", "trt", plan.name, (), why)
        if requested == "trt":
            error = BackendUnavailableError if blocker else EngineMismatchError
            raise error(f"--backend trt: {why}: {REBUILD} on this machine, or {USE_ORT}")
        if cuda_ok:
            return _ort("ort-cuda", onnx, (CUDA, CPU), f"{why}; ONNX Runtime's CUDA provider is available")
        gpu_why = (
            "no CUDA GPU" if env.gpu is None else "onnxruntime has no CUDA provider (install onnxruntime-gpu)"
        )
        return _ort("ort-cpu", onnx, (CPU,), f"{why}; {gpu_why}: ONNX Runtime on the CPU")
    if requested == "ort-cpu":
        return _ort("ort-cpu", onnx, (CPU,), "asked for ort-cpu")
    if requested == "ort-cuda":
        if not cuda_ok:
            raise BackendUnavailableError(
                "--backend ort-cuda: "
                + (
                    "no CUDA GPU is visible"
                    if env.gpu is None
                    else "onnxruntime has no CUDA provider (install onnxruntime-gpu)"
                )
                + "; pass `--backend ort-cpu`"
            )
        return _ort("ort-cuda", onnx, (CUDA, CPU), "asked for ort-cuda")
    if requested == "ort":
        if cuda_ok and TENSORRT in env.ort_providers and env.tensorrt_version is not None:
            return _ort(
                "ort-trt", onnx, (TENSORRT, CUDA, CPU), "asked for ort: TensorRT and CUDA providers present"
            )
        if cuda_ok:
            return _ort("ort-cuda", onnx, (CUDA, CPU), "asked for ort: CUDA provider present")
        return _ort("ort-cpu", onnx, (CPU,), "asked for ort: no GPU provider here, using the CPU")
    raise BackendError(f"unknown backend {requested!r}")


def open_backend(config: BackendConfig, *, env: Environment | None = None) -> Backend:
    """Select (logging which and why), verify the chosen file against the manifest, open it and warm it up."""
    engines_dir = config.engines_dir if config.engines_dir is not None else default_engines_dir()
    manifest = load_manifest(engines_dir / MANIFEST_NAME)
    env = env if env is not None else probe_environment(config.device_index)
    sel = select_backend(
        config.backend, env, manifest.artifacts, model=config.model, precision=config.precision
    )
    log.info("backend %s (asked: %s): %s", sel.label, config.backend, sel.reason)
    artifact = manifest.get(sel.artifact)
    if sel.kind == "trt":
        from edge.backends.trt import TensorRTBackend

        onnx = _onnx(manifest.artifacts, config.model)
        model_hash = str(onnx.extra.get("model_hash")) if onnx is not None else None
        backend: Backend = TensorRTBackend(artifact, engines_dir, config, env=env, model_hash=model_hash)
    else:
        problems = verify_artifact(artifact, engines_dir)
        if problems:
            raise EngineIntegrityError(
                f"{artifact.path} does not match the manifest ({problems[0].message}): not loaded; {REBUILD}"
            )
        from edge.backends.ort import OrtBackend

        backend = OrtBackend(
            engines_dir / artifact.path,
            config,
            providers=sel.providers,
            trt_cache_dir=engines_dir / ".cache" / "ort-trt",
        )
    try:
        _check_shapes(backend, manifest.sections.get("feature_spec"), artifact.path)
        if config.warmup_runs:
            backend.warmup(config.warmup_runs)
    except BaseException:
        backend.close()
        raise
    return backend


def _check_shapes(backend: Backend, feature_spec: object, source: str) -> None:
    """Refuse a model whose input shapes are not the windows this runtime makes, before it goes live (each
    window would fail). The manifest's feature spec is the extractors' (the pipeline checks that digest)."""
    if not isinstance(feature_spec, Mapping):
        return
    try:
        expected = spec_input_shapes(feature_spec)
    except (KeyError, TypeError, ValueError) as exc:  # malformed: the pipeline's spec check reports it
        log.debug("feature_spec section unreadable (%r): input shapes not checked", exc)
        return
    check_io_shapes({t.name: t.shape for t in backend.io.inputs}, expected, source=source)
