"""`qamoe-plot --replay CLIP`: run `qamoe-live --fast --video-file CLIP` and record what it publishes.

The recording subscribes before qamoe-live starts (it retries the connection every 5 ms), so the first window of
a fast replay is not lost to ZeroMQ's slow joiner; qamoe-live runs as a subprocess (`edge.cli.liverun`), the way a
user runs it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edge.cli.liverun import LiveCommand, LiveRun, LiveRunError
from edge.publish.recorder import free_endpoint
from edge.record.config import RecordConfig
from edge.record.session import BackgroundRecording, RecordStats

log = logging.getLogger(__name__)
DEFAULT_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class ReplayConfig:
    """clip: the media file; record_dir: where the recording goes; engines_dir: qamoe-live's --engines-dir
    (None: its default); live_args: more qamoe-live flags (e.g. --backend ort); timeout_s: the replay's limit."""

    clip: Path
    record_dir: Path
    engines_dir: Path | None = None
    live_args: Sequence[str] = ()
    timeout_s: float = DEFAULT_TIMEOUT_S


def replay_and_record(config: ReplayConfig) -> RecordStats:
    """Replay the clip through qamoe-live and record it into `config.record_dir`; returns the counts.
    Raises LiveRunError (carrying qamoe-live's exit code and stderr) when qamoe-live fails or runs too long."""
    endpoint = free_endpoint()
    args = ("--video-file", str(config.clip), "--fast", *config.live_args)
    command = LiveCommand(args, engines_dir=config.engines_dir, endpoint=endpoint)
    recording = BackgroundRecording(endpoint, RecordConfig(config.record_dir))
    try:
        with LiveRun(command) as run:
            outcome = run.finish(config.timeout_s, settle_s=0.0)
    finally:
        stats = recording.stop(settle_s=0.5)
    if outcome.exit_code != 0:
        last = [line for line in outcome.stderr.splitlines() if line.strip()][-1:] or ["(nothing on stderr)"]
        raise LiveRunError(f"qamoe-live exited {outcome.exit_code}: {last[0]}", exit_code=outcome.exit_code,
                           stderr=outcome.stderr)
    log.info("recorded %d messages of the replay of %s", stats.received, config.clip)
    return stats
