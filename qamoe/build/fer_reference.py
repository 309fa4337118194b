"""An independent numpy forward pass of a Keras 2 HDF5 CNN, used only to check the torch rebuild in `fer`.

Written separately on purpose: it reads the HDF5 itself, keeps TensorFlow's NHWC layout and channels-last
kernels (no transposes, so a wrong permute in the torch rebuild cannot be repeated here), and implements
TensorFlow's "same" padding rule from its definition (output = ceil(input / stride), the surplus split with
the larger half at the end). Slow and simple; never used at run time.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def _tf_pads(n: int, k: int, s: int) -> tuple[int, int]:
    out = -(-n // s)
    surplus = max(0, (out - 1) * s + k - n)
    before = surplus // 2
    return before, surplus - before


def _pad(x: np.ndarray, k: tuple[int, int], s: tuple[int, int], mode: str, fill: float) -> np.ndarray:
    if mode == "valid":
        return x
    ph, pw = _tf_pads(x.shape[1], k[0], s[0]), _tf_pads(x.shape[2], k[1], s[1])
    return np.pad(x, ((0, 0), ph, pw, (0, 0)), constant_values=fill)


def _windows(x: np.ndarray, k: tuple[int, int], s: tuple[int, int]):
    """Yield (i, j, strided view) for every kernel offset (i, j) of a valid sliding window."""
    oh, ow = (x.shape[1] - k[0]) // s[0] + 1, (x.shape[2] - k[1]) // s[1] + 1
    for i in range(k[0]):
        for j in range(k[1]):
            yield i, j, x[:, i : i + s[0] * (oh - 1) + 1 : s[0], j : j + s[1] * (ow - 1) + 1 : s[1], :]


def conv2d(x: np.ndarray, kernel: np.ndarray, s: tuple[int, int], mode: str) -> np.ndarray:
    """NHWC conv with a (kh, kw, cin, cout) kernel."""
    k = kernel.shape[:2]
    xp = _pad(x, k, s, mode, 0.0)
    return sum(np.einsum("nhwc,cd->nhwd", win, kernel[i, j]) for i, j, win in _windows(xp, k, s))


def depthwise2d(x: np.ndarray, kernel: np.ndarray, s: tuple[int, int], mode: str) -> np.ndarray:
    """NHWC depthwise conv with a (kh, kw, cin, multiplier) kernel; output channel c*multiplier + m."""
    k, mult = kernel.shape[:2], kernel.shape[3]
    xp = _pad(x, k, s, mode, 0.0)
    out = sum(win[..., :, None] * kernel[i, j] for i, j, win in _windows(xp, k, s))
    return out.reshape(*out.shape[:3], -1) if mult > 1 else out[..., 0]


def maxpool2d(x: np.ndarray, k: tuple[int, int], s: tuple[int, int], mode: str) -> np.ndarray:
    xp = _pad(x, k, s, mode, -np.inf)
    return np.max(np.stack([win for _, _, win in _windows(xp, k, s)]), axis=0)


def _weights(group, name: str) -> dict[str, np.ndarray]:
    if name not in group:
        return {}
    g = group[name]
    names = [n.decode() if isinstance(n, bytes) else n for n in g.attrs.get("weight_names", ())]
    return {n.split("/")[-1].split(":")[0]: np.asarray(g[n], dtype=np.float64) for n in names}


def _act(x: np.ndarray, kind: str) -> np.ndarray:
    if kind == "relu":
        return np.maximum(x, 0.0)
    if kind == "softmax":
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    if kind == "linear":
        return x
    raise ValueError(f"activation {kind} not implemented in the reference")


def _apply(kind: str, cfg: dict, w: dict[str, np.ndarray], xs: list[np.ndarray]) -> np.ndarray:
    x = xs[0]
    if kind == "Conv2D":
        y = conv2d(x, w["kernel"], tuple(cfg["strides"]), cfg["padding"])
    elif kind == "SeparableConv2D":
        y = depthwise2d(x, w["depthwise_kernel"], tuple(cfg["strides"]), cfg["padding"])
        y = conv2d(y, w["pointwise_kernel"], (1, 1), "valid")
    elif kind == "BatchNormalization":
        scale = w.get("gamma", 1.0) / np.sqrt(w["moving_variance"] + cfg["epsilon"])
        return (x - w["moving_mean"]) * scale + w.get("beta", 0.0)
    elif kind == "Activation":
        return _act(x, cfg["activation"])
    elif kind == "MaxPooling2D":
        return maxpool2d(x, tuple(cfg["pool_size"]), tuple(cfg["strides"]), cfg["padding"])
    elif kind == "Add":
        return np.sum(xs, axis=0)
    elif kind == "GlobalAveragePooling2D":
        return x.mean(axis=(1, 2))
    else:
        raise ValueError(f"layer type {kind} not implemented in the reference")
    if "bias" in w:
        y = y + w["bias"]
    return _act(y, cfg.get("activation", "linear"))


def forward_reference(h5_path: Path, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run the HDF5 model on NHWC `x` in float64: (model output, global average of the classifier input)."""
    import h5py

    with h5py.File(h5_path, "r") as f:
        config = json.loads(f.attrs["model_config"])["config"]
        env: dict[str, np.ndarray] = {}
        kinds: dict[str, str] = {}
        sources: dict[str, list[str]] = {}
        for spec in config["layers"]:
            name, kind = spec["name"], spec["class_name"]
            srcs = [node[0] for node in spec["inbound_nodes"][0]] if spec["inbound_nodes"] else []
            kinds[name], sources[name] = kind, srcs
            if kind == "InputLayer":
                env[name] = np.asarray(x, dtype=np.float64)
                continue
            env[name] = _apply(
                kind, spec["config"], _weights(f["model_weights"], name), [env[s] for s in srcs]
            )
        out = config["output_layers"][0][0]
    gap = next(n for n, k in kinds.items() if k == "GlobalAveragePooling2D")
    classifier_input = sources[sources[gap][0]][0]
    return env[out].astype(np.float32), env[classifier_input].mean(axis=(1, 2)).astype(np.float32)
