"""Helpers for the live-pipeline tests: an engines directory holding the built assets plus a QA-MoE engine
for the live feature spec (`qamoe.build.scratch`), and a real ZeroMQ subscriber that records what qamoe-live
publishes (`edge.publish.recorder`). Both live in the product so the tools use the same ones."""

from __future__ import annotations

from pathlib import Path

from edge.publish.recorder import Recorder as Collector
from edge.publish.recorder import free_endpoint
from qamoe.build.scratch import make_scratch_engines as make_live_engines

REPO = Path(__file__).resolve().parents[2]
GRID = REPO.parent / "shared" / "media" / "grid"

__all__ = ["GRID", "REPO", "Collector", "free_endpoint", "make_live_engines"]
