"""Modalities are named, never indexed by position.

MMSA and LNLN disagree on the order of [text, audio, vision]; code here keys everything by `Modality` so that
class of bug cannot exist. Where a fixed order is unavoidable (a concatenation inside the model, the order of
ONNX outputs) it is `MODALITIES`, defined once, here.
"""

from __future__ import annotations

import enum


class Modality(str, enum.Enum):
    TEXT = "text"
    AUDIO = "audio"
    VISION = "vision"

    def __str__(self) -> str:  # "text", not "Modality.TEXT", in logs, file names and ONNX I/O names
        return self.value


MODALITIES: tuple[Modality, ...] = (Modality.TEXT, Modality.AUDIO, Modality.VISION)


def parse_modality(name: str | Modality) -> Modality:
    """Parse a modality name ("text", "audio", "vision"; "visual" and "video" are accepted for vision)."""
    if isinstance(name, Modality):
        return name
    key = str(name).strip().lower()
    aliases = {"visual": "vision", "video": "vision", "acoustic": "audio", "language": "text"}
    key = aliases.get(key, key)
    try:
        return Modality(key)
    except ValueError:
        valid = ", ".join(m.value for m in MODALITIES)
        raise ValueError(f"unknown modality {name!r}: use one of {valid}") from None
