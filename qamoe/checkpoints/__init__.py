"""Checkpoints shipped with qamoe-live (docs/MODEL_CARD.md). `SHIPPED` is the default live model that
`python tools/build_engine.py` turns into the engine `qamoe-live` runs; everything that means "the shipped
checkpoint" (the build tool, the benchmarks, the tests) takes it from here."""

from pathlib import Path

SHIPPED = Path(__file__).resolve().parent / "live_v2"
