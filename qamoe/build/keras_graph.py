"""Read a Keras 2 functional model (HDF5) without TensorFlow: its layer graph and weights, via h5py.

Only what the mini-Xception expression CNN uses is supported (InputLayer, Conv2D, SeparableConv2D,
BatchNormalization, Activation, MaxPooling2D, Add, GlobalAveragePooling2D); anything else is a clear error.
Weights keep Keras' layouts (channels-last kernels); converters transpose them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qamoe.build.errors import ConversionError

SUPPORTED = {
    "InputLayer",
    "Conv2D",
    "SeparableConv2D",
    "BatchNormalization",
    "Activation",
    "MaxPooling2D",
    "Add",
    "GlobalAveragePooling2D",
}


@dataclass(frozen=True)
class KerasLayer:
    name: str
    kind: str
    config: Mapping[str, Any]
    inputs: tuple[str, ...]
    weights: Mapping[str, np.ndarray] = field(default_factory=dict)  # "kernel", "gamma", ... (Keras layout)


@dataclass(frozen=True)
class KerasGraph:
    layers: tuple[KerasLayer, ...]  # in the file's order, which is topological for a saved functional model
    input_name: str
    output_name: str
    input_shape: tuple[int, int, int]  # H, W, C

    def layer(self, name: str) -> KerasLayer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ConversionError(f"no layer {name!r} in the Keras graph")

    def classifier_input(self) -> str:
        """The tensor the classifier sees: the input of the conv feeding the final global average pooling."""
        gap = [lay for lay in self.layers if lay.kind == "GlobalAveragePooling2D"]
        if len(gap) != 1:
            raise ConversionError(
                "expected exactly one GlobalAveragePooling2D layer (the classifier's pooling)"
            )
        classifier = self.layer(gap[0].inputs[0])
        if classifier.kind != "Conv2D":
            raise ConversionError(f"expected a Conv2D classifier before the pooling, found {classifier.kind}")
        return classifier.inputs[0]


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """Keras/TensorFlow "same" padding (before, after) on one axis; an odd pixel goes after (bottom/right)."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def load_keras_h5(path: Path) -> KerasGraph:
    import h5py

    with h5py.File(path, "r") as f:
        if "model_config" not in f.attrs or "model_weights" not in f:
            raise ConversionError(
                f"{path.name} is not a Keras 2 HDF5 model (no model_config / model_weights)"
            )
        config = json.loads(_text(f.attrs["model_config"]))
        if config.get("class_name") not in ("Model", "Functional"):
            raise ConversionError(
                f"{path.name}: expected a functional Keras model, got {config.get('class_name')}"
            )
        layers = tuple(_parse_layer(spec, f["model_weights"]) for spec in config["config"]["layers"])
        inputs = config["config"]["input_layers"]
        outputs = config["config"]["output_layers"]
    if len(inputs) != 1 or len(outputs) != 1:
        raise ConversionError(f"{path.name}: expected one input and one output")
    first = layers[0]
    shape = first.config.get("batch_input_shape")
    if first.kind != "InputLayer" or not shape or len(shape) != 4 or None in shape[1:]:
        raise ConversionError(
            f"{path.name}: expected a fixed-size NHWC InputLayer first, got {first.kind} {shape}"
        )
    return KerasGraph(layers, inputs[0][0], outputs[0][0], (int(shape[1]), int(shape[2]), int(shape[3])))


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _parse_layer(spec: Mapping[str, Any], weights_group: Any) -> KerasLayer:
    kind = spec["class_name"]
    name = spec["name"] if "name" in spec else spec["config"]["name"]
    if kind not in SUPPORTED:
        raise ConversionError(f"Keras layer {name} of type {kind} is not supported by this converter")
    nodes = spec.get("inbound_nodes") or []
    if len(nodes) > 1:
        raise ConversionError(f"Keras layer {name} is shared (called {len(nodes)} times); not supported")
    inputs = tuple(str(inbound[0]) for inbound in nodes[0]) if nodes else ()
    cfg = spec["config"]
    if cfg.get("data_format", "channels_last") != "channels_last":
        raise ConversionError(f"Keras layer {name}: only channels_last is supported")
    return KerasLayer(name, kind, cfg, inputs, _layer_weights(weights_group, name))


def _layer_weights(group: Any, layer: str) -> dict[str, np.ndarray]:
    if layer not in group:
        return {}
    g = group[layer]
    out = {}
    for full in (_text(n) for n in g.attrs.get("weight_names", ())):
        short = full.rsplit("/", 1)[-1].split(":")[0]  # "conv2d_1_1/kernel:0" -> "kernel"
        out[short] = np.asarray(g[full], dtype=np.float32)
    return out
