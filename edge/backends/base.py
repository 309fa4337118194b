"""The one interface every inference backend implements, and its validated configuration.

    with open_backend(BackendConfig(backend="auto")) as model:      # edge.backends.select
        model.warmup()
        out = model.infer({"text_feats": ..., "text_mask": ..., ...})  # -> {"valence": [B], ...}

Exactly one thread owns a backend (STYLE.md); a backend is not thread-safe.
"""

from __future__ import annotations

import abc
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import numpy as np

from edge.backends.errors import BackendError
from edge.backends.plan_key import PRECISIONS

log = logging.getLogger(__name__)

BACKEND_CHOICES = ("auto", "trt", "ort", "ort-cpu", "ort-cuda")


@dataclass(frozen=True)
class BackendConfig:
    """backend: one of BACKEND_CHOICES. engines_dir: None = `edge.assets.default_engines_dir()`.
    model: the manifest name of the ONNX artifact. intra_op_threads: ORT CPU threads (1 suits the tiny QA-MoE
    graph and leaves the other cores to capture and ASR). allow_spinning: ORT worker threads busy-wait between
    ops (lower latency, burns a core). precision: preferred TensorRT plan precision (None: fp16, fp32, int8 in
    that order). device_index: CUDA device."""

    backend: str = "auto"
    engines_dir: Path | None = None
    model: str = "qamoe"
    intra_op_threads: int = 1
    allow_spinning: bool = False
    precision: str | None = None
    device_index: int = 0
    warmup_runs: int = 10

    def __post_init__(self) -> None:
        if self.backend not in BACKEND_CHOICES:
            raise BackendError(f"unknown backend {self.backend!r}: use one of {', '.join(BACKEND_CHOICES)}")
        if self.engines_dir is not None and not isinstance(self.engines_dir, Path):
            object.__setattr__(self, "engines_dir", Path(os.fspath(self.engines_dir)))
        if not isinstance(self.intra_op_threads, int) or self.intra_op_threads < 0:
            raise BackendError(
                f"intra_op_threads must be an int >= 0 (0: ORT decides), got {self.intra_op_threads!r}"
            )
        if self.precision is not None and self.precision not in PRECISIONS:
            raise BackendError(
                f"precision {self.precision!r} unknown: use one of {PRECISIONS} or leave it unset"
            )
        if self.device_index < 0 or self.warmup_runs < 0:
            raise BackendError("device_index and warmup_runs must be >= 0")


@dataclass(frozen=True)
class TensorInfo:
    """One named tensor: numpy dtype name and shape (str for a dynamic axis such as "batch")."""

    name: str
    dtype: str
    shape: tuple[int | str, ...]


@dataclass(frozen=True)
class IOSpec:
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.outputs)

    def dummy_inputs(self, batch: int = 1) -> dict[str, np.ndarray]:
        """Zeros with every step masked out: the 'all modalities absent' window, a valid input for warm-up."""
        out = {}
        for t in self.inputs:
            shape = tuple(batch if isinstance(d, str) else d for d in t.shape)
            out[t.name] = np.zeros(shape, dtype=np.dtype(t.dtype))
        return out


class Backend(abc.ABC):
    """`infer(dict of arrays) -> dict of arrays` over the QA-MoE contract, plus warm-up and close."""

    name: str = "backend"

    @property
    @abc.abstractmethod
    def io(self) -> IOSpec: ...

    @abc.abstractmethod
    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    def warmup(self, runs: int = 10, batch: int = 1) -> None:
        """Run `runs` dummy batches so allocations and kernel selection happen before going live."""
        dummy = self.io.dummy_inputs(batch)
        for _ in range(runs):
            self.infer(dummy)
        log.debug("%s: warmed up with %d run(s) at batch %d", self.name, runs, batch)

    def check_inputs(self, inputs: Mapping[str, np.ndarray]) -> int:
        """The batch size of `inputs`, after checking names and that every tensor has the same batch."""
        names = self.io.input_names
        if set(inputs) != set(names):
            missing = sorted(set(names) - set(inputs))
            extra = sorted(set(inputs) - set(names))
            raise BackendError(
                f"{self.name}: inputs must be exactly {list(names)} (missing {missing}, extra {extra})"
            )
        batches = {np.shape(inputs[n])[0] if np.ndim(inputs[n]) else -1 for n in names}
        if len(batches) != 1 or -1 in batches:
            raise BackendError(
                f"{self.name}: every input needs the same leading batch axis, got {sorted(batches)}"
            )
        return int(batches.pop())

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
