"""This CPU's identity for per-machine native code: its architecture and ISA flags (standard library only).

`tools/build_engine.py` records them beside the compiled audio DSP (`-march=native`); the runtime loads that
library only where `foreign_cpu()` finds nothing missing, since code using an instruction this CPU lacks dies
on SIGILL instead of raising an error.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping


def cpu_features() -> tuple[str, frozenset[str]]:
    """(machine, ISA flags) of this CPU: `platform.machine()` and the 'flags' (x86) or 'Features' (Arm)
    line of /proc/cpuinfo; no flags where that file does not exist."""
    flags: frozenset[str] = frozenset()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    flags = frozenset(value.split())
                    break
    except OSError:
        pass
    return platform.machine(), flags


def foreign_cpu(extra: Mapping[str, object]) -> str:
    """Why a library built on the CPU described by its manifest `extra` must not run here ('' if it can):
    another architecture, or ISA flags this CPU lacks (its code would die on an illegal instruction)."""
    machine, flags = cpu_features()
    built_on = str(extra.get("machine", ""))
    if built_on != machine:
        return f"built on {built_on or 'an unrecorded machine'}, this is {machine}"
    needed = extra.get("cpu_flags", [])
    lacking = sorted(set(needed) - flags) if isinstance(needed, list) else ["(unrecorded flags)"]
    return f"this CPU lacks {', '.join(lacking[:8])}" if lacking else ""
