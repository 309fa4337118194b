"""DSP asset: `edge/features/native/audio_dsp.c` compiled for this machine into `audio-dsp`.

No pinned wheel: the input is the C file in this repository, and the compiler is the machine's own (`$CC`,
else `cc`, `gcc` or `clang` on PATH). Flags: -O3 -march=native (vector units of this CPU; retried without
it where the compiler refuses it), -ffp-contract=off (no fused multiply-adds, so the frames match numpy bit
for bit), -fopenmp-simd (vectorised float sums; no OpenMP runtime), -fPIC -shared, libm. The manifest records
the compiler, the flags and the CPU's ISA flags: the runtime refuses to load a library built for a CPU with
features this one lacks (it would die on an illegal instruction) and runs the numpy code instead.

The build fails unless the library matches the numpy reference on every block of `parity_streams()`
(`qamoe.build.vad`: harmonic speech-like audio, the same at 0 dB SNR, noise, near-silence, clipping) within
the tolerances of `TOLERANCES`, and reproduces the SNR order statistics exactly. Without a compiler it says
so in one line and builds nothing; the runtime then uses the numpy code.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from edge.features.cpu_isa import cpu_features
from edge.features.dsp_native import (
    DSP_ABI,
    DSP_ARTIFACT,
    SOURCE,
    NativeHopAnalyser,
    NativeOrderStats,
    load_library,
)
from edge.manifest import Artifact
from qamoe.build.errors import BuildError, ParityError
from qamoe.build.runner import ArtifactSpec, BuildContext, record

log = logging.getLogger(__name__)

REL_PATH = "assets/audio-dsp/libqamoe_audio_dsp.so"
RECIPE = 1
BASE_FLAGS = ("-O3", "-ffp-contract=off", "-fopenmp-simd", "-fPIC", "-shared", "-std=c99")
NATIVE_FLAG = "-march=native"
CHECKED_WITH = ("edge.features.dsp_native", "edge.features.audio_dsp")  # the binding and the reference
# max abs difference per output, native vs numpy, over hops whose voicing decision agrees; `voiced_flips`
# is the largest share of hops allowed to decide voicing differently (a d' within rounding of the threshold)
TOLERANCES = {
    "mfcc": 1e-3,  # 13 sums over 40 log-mels of up to |23| (the log floor): 1e-3 is ~1e-6 relative
    "log_mel": 1e-4,
    "energy_db": 1e-3,
    "zcr": 0.0,
    "f0": 0.05,
    "vprob": 1e-3,
    "voiced_flips": 0.01,
}


def _sha256_of_module(name: str) -> str:
    import importlib.util

    spec = importlib.util.find_spec(name)
    origin = spec.origin if spec is not None else None
    return hashlib.sha256(Path(origin).read_bytes()).hexdigest() if origin else ""


def find_compiler() -> str | None:
    """`$CC` if set, else the first of cc, gcc, clang on PATH."""
    env = os.environ.get("CC")
    if env:
        return env
    return next((found for name in ("cc", "gcc", "clang") if (found := shutil.which(name))), None)


def compiler_version(cc: str) -> str:
    try:
        out = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    return (out.stdout or out.stderr).splitlines()[0].strip() if (out.stdout or out.stderr) else "unknown"


class DspStage:
    """The `dsp` build stage (implements qamoe.build.runner.Stage)."""

    name = "dsp"

    def build_key(self) -> str:
        cc = find_compiler()
        payload = {
            "stage": self.name,
            "recipe": RECIPE,
            "abi": DSP_ABI,
            "source_sha256": hashlib.sha256(SOURCE.read_bytes()).hexdigest(),
            # the parity recorded in the manifest is that of the bindings and the reference as they are
            "checked_with": [_sha256_of_module(m) for m in CHECKED_WITH],
            "compiler": compiler_version(cc) if cc else None,
            "flags": [*BASE_FLAGS, NATIVE_FLAG],
            "tolerances": TOLERANCES,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def build(self, ctx: BuildContext) -> list[Artifact]:
        cc = find_compiler()
        if cc is None:
            log.warning(
                "dsp: no C compiler (set $CC, or install gcc): not built; the audio features run on "
                "the numpy code, about 2x slower"
            )
            return []
        dest = ctx.asset_path(REL_PATH)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".dsp-", dir=dest.parent) as tmp:
            out = Path(tmp) / dest.name
            flags = compile_library(cc, out)
            worst = parity(out)
            os.chmod(out, 0o755)
            os.replace(out, dest)
        log.info(
            "dsp: %s %s; parity with numpy: %s",
            Path(cc).name,
            " ".join(flags),
            ", ".join(f"{k} {v:.2g}" for k, v in worst.items()),
        )
        machine, cpu_flags = cpu_features()
        extra = {
            "source": str(SOURCE.relative_to(SOURCE.parents[3])),
            "source_sha256": hashlib.sha256(SOURCE.read_bytes()).hexdigest(),
            "abi": DSP_ABI,
            "compiler": compiler_version(cc),
            "cflags": list(flags),
            "machine": machine,
            "cpu_flags": sorted(cpu_flags),  # the runtime loads it only on a CPU that has all of these
            "parity_max_abs_diff": worst,
            "reference": "edge.features.audio_dsp.HopAnalyser (numpy) and SnrTracker's numpy selection",
        }
        return [record(ctx, ArtifactSpec(DSP_ARTIFACT, "shared-library", REL_PATH, None, (), (), extra))]


def compile_library(cc: str, out: Path) -> tuple[str, ...]:
    """Compile SOURCE into `out`; returns the flags used (without -march=native where it is refused)."""
    errors = []
    for flags in ((*BASE_FLAGS, NATIVE_FLAG), BASE_FLAGS):
        cmd = [cc, *flags, "-o", str(out), str(SOURCE), "-lm"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BuildError(f"dsp: cannot run the C compiler {cc}: {exc}") from exc
        if done.returncode == 0:
            return flags
        errors.append(f"{' '.join(cmd)}: {done.stderr.strip()[-800:]}")
    raise BuildError("dsp: the C compiler failed:\n" + "\n".join(errors))


def _blocks(stream: np.ndarray, seg_len: int, block: int, left: int) -> list[np.ndarray]:
    padded = np.concatenate([np.zeros(left, np.float32), stream, np.zeros(seg_len, np.float32)])
    return [padded[i : i + seg_len] for i in range(0, stream.size, block)]


def parity(library: Path) -> dict[str, float]:
    """Worst differences, native vs numpy, per output (see TOLERANCES); ParityError past a tolerance."""
    from edge.features.audio_config import AudioFeatureConfig
    from edge.features.audio_dsp import HopAnalyser
    from qamoe.build.vad import parity_streams

    cfg = AudioFeatureConfig()
    lib = load_library(library)
    ref, nat = HopAnalyser(cfg), NativeHopAnalyser(cfg, lib)
    seg_len = ref.left + cfg.block_samples + ref.right
    names = ("mfcc", "log_mel", "power", "energy_db", "zcr", "f0", "vprob", "voiced")
    worst = dict.fromkeys([k for k in TOLERANCES if k != "voiced_flips"], 0.0)
    flips = hops = 0
    for stream in parity_streams():
        for seg in _blocks(stream, seg_len, cfg.block_samples, ref.left):
            a, b = (
                dict(zip(names, ref.analyse(seg), strict=True)),
                dict(zip(names, nat.analyse(seg), strict=True)),
            )
            same = a["voiced"] == b["voiced"]
            flips += int((~same).sum())
            hops += same.size
            for key in worst:
                diff = np.abs(np.asarray(a[key], np.float64) - np.asarray(b[key], np.float64))
                diff = diff[same] if key in ("f0", "vprob") else diff
                worst[key] = max(worst[key], float(diff.max(initial=0.0)))
    worst["voiced_flips"] = flips / max(hops, 1)
    bad = {k: v for k, v in worst.items() if not v <= TOLERANCES[k]}
    if bad:
        raise ParityError(f"dsp: compiled DSP vs numpy out of tolerance: {bad} (tolerances {TOLERANCES})")
    check_order_stats(NativeOrderStats(lib, 300))
    return worst


def check_order_stats(native: NativeOrderStats, *, seed: int = 1, n: int = 700, step: int = 4,
                      decimals: int = 2) -> None:  # fmt: skip
    """Exact agreement with numpy's partition over windows of up to 300 powers ending every `step` hops,
    still growing and full ones, with ties (powers rounded to `decimals`); ParityError at the first miss."""
    rng = np.random.default_rng(seed)
    power = np.round(rng.exponential(1.0, n), decimals)
    ends = np.arange(step, n + 1, step)
    starts = np.maximum(ends - 300, 0)
    noise, loud = native(power, starts, ends, 0.10, 0.95)
    for i, (s, e) in enumerate(zip(starts, ends, strict=True)):
        k = (int(0.10 * (e - s - 1)), int(0.95 * (e - s - 1)))
        part = np.partition(power[s:e], k)
        if noise[i] != part[k[0]] or loud[i] != part[k[1]]:
            raise ParityError(f"dsp: order statistics of window [{s}, {e}) differ from numpy's partition")
