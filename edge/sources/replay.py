"""Replay time for file sources: media time -> capture timestamps, and pacing.

Real-time mode (the default) behaves like a device: the item with media time m is released at
`start + m` on the monotonic clock and stamped with that time. Fast mode releases at once and stamps
`t0_ns + m`, so timestamps are identical across runs (evaluation, tests). Looping continues the timeline:
each pass is offset by the length of the passes before it, so timestamps stay strictly monotonic.

Thread-free: `due_ns()` / `wait()` take the media time that comes with the data.
"""

from __future__ import annotations

import dataclasses
import logging
import time

from edge.sources.errors import SourceConfigError
from edge.vocab import NS

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ReplayConfig:
    """`realtime`: pace to the media clock (True) or run as fast as possible with synthesized, deterministic
    timestamps (False). `loop`: start again at the end (soak tests) instead of reporting EOS. `t0_ns`: the
    timeline origin in fast mode (ignored in real time, where the origin is the monotonic time at start)."""

    realtime: bool = True
    loop: bool = False
    t0_ns: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.t0_ns, int) or self.t0_ns < 0:
            raise SourceConfigError(f"t0_ns={self.t0_ns!r}: give a non-negative integer of nanoseconds")


class ReplayClock:
    """Maps media time (ns from the start of the file) of the current pass to a capture timestamp."""

    def __init__(self, config: ReplayConfig) -> None:
        self.config = config
        self._origin_ns: int | None = None  # timeline origin, fixed on first use
        self._pass_offset_ns = 0  # summed length of the completed passes
        self._last_ns = -1

    def start(self) -> None:
        """Fix the origin (real time: now) if not yet fixed; later calls (reopens) keep the timeline."""
        if self._origin_ns is None:
            self._origin_ns = time.monotonic_ns() if self.config.realtime else self.config.t0_ns

    def next_pass(self, pass_length_ns: int) -> None:
        """The file starts again: media time restarts at 0, the timeline continues after `pass_length_ns`."""
        self._pass_offset_ns = max(self._pass_offset_ns + pass_length_ns, self._last_ns + 1 - self._origin())

    def resume_after_gap(self) -> None:
        """A reopen after a failure: real time moves on, so start the next pass at 'now' (fast mode: right
        after the last emitted item)."""
        if self.config.realtime:
            self._pass_offset_ns = time.monotonic_ns() - self._origin()
        else:
            self._pass_offset_ns = self._last_ns + 1 - self._origin()

    def due_ns(self, media_ns: int) -> int:
        """Capture timestamp of the item with this media time (monotonic in real time, synthetic in fast)."""
        return self._origin() + self._pass_offset_ns + media_ns

    def wait(self, due_ns: int, timeout_s: float) -> bool:
        """Sleep until `due_ns` in real-time mode; False (after sleeping timeout_s) if not due by then."""
        if not self.config.realtime:
            return True
        left_ns = due_ns - time.monotonic_ns()
        if left_ns <= 0:
            return True
        if left_ns > timeout_s * NS:
            time.sleep(max(0.0, timeout_s))
            return False
        time.sleep(left_ns / NS)
        return True

    def emitted(self, t_ns: int) -> None:
        self._last_ns = max(self._last_ns, t_ns)

    def _origin(self) -> int:
        if self._origin_ns is None:
            self.start()
        assert self._origin_ns is not None
        return self._origin_ns
