"""Checkpoints shipped with qamoe-live (docs/MODEL_CARD.md): `live_v1/` is the default live model that
`python tools/build_engine.py` turns into the engine `qamoe-live` runs."""

from pathlib import Path

LIVE_V1 = Path(__file__).resolve().parent / "live_v1"
