"""`qamoe-plot`: a timeline picture of a recording: valence with its +-1 sd band coloured by polarity, the
reliabilities (absent hatched), the transcript's words and the devices' states.

    qamoe-plot RECORDING -o timeline.png          # a qamoe-record directory or one of its .jsonl files
    qamoe-plot --replay CLIP -o timeline.png      # run qamoe-live --fast --video-file CLIP, record, plot

Exit codes: 0 written, 2 bad arguments, 3 the recording cannot be read or has no window to plot, 6 the picture
cannot be written (or matplotlib is missing); with --replay, qamoe-live's own code when it fails."""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from edge.cli.liverun import LiveRunError
from edge.errors import EXIT_OK, EXIT_UNEXPECTED, EXIT_USAGE, QamoeLiveError
from edge.record.plot import plot_recording
from edge.record.replay import ReplayConfig, replay_and_record


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="qamoe-plot", description=__doc__.split("\n")[0])
    p.add_argument("recording", type=Path, nargs="?", metavar="RECORDING",
                   help="a qamoe-record directory or .jsonl file")
    p.add_argument("--replay", type=Path, metavar="CLIP", help="replay this media file with qamoe-live --fast")
    p.add_argument("-o", "--out", type=Path, required=True, help="the picture to write (.png, .svg, .pdf)")
    p.add_argument("--source", default=None, help="the source_id to plot (default: the first one recorded)")
    p.add_argument("--record-dir", type=Path, default=None,
                   help="with --replay: keep the recording here (default: a temporary directory)")
    p.add_argument("--engines-dir", type=Path, default=None, help="with --replay: qamoe-live's --engines-dir")
    p.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    return p


def check_args(args: argparse.Namespace) -> None:
    if (args.recording is None) == (args.replay is None):
        raise ValueError("give a RECORDING or --replay CLIP (one of them)")
    if args.replay is None and (args.record_dir or args.engines_dir):
        raise ValueError("--record-dir and --engines-dir go with --replay")
    if args.replay is not None and not args.replay.is_file():
        raise ValueError(f"--replay {args.replay}: no such file")


def plot(args: argparse.Namespace) -> Path:
    """Plot (after replaying, with --replay); returns the recording that was plotted."""
    if args.replay is None:
        plot_recording(args.recording, args.out, source_id=args.source)
        return args.recording
    with tempfile.TemporaryDirectory(prefix="qamoe-plot-") as tmp:
        record_dir = args.record_dir or Path(tmp) / "recording"
        replay_and_record(ReplayConfig(args.replay, record_dir, engines_dir=args.engines_dir))
        plot_recording(record_dir, args.out, source_id=args.source)
    return record_dir


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        check_args(args)
        recording = plot(args)
    except QamoeLiveError as exc:
        print(f"qamoe-plot: {exc}", file=sys.stderr)
        return exc.exit_code if exc.exit_code is not None else EXIT_UNEXPECTED
    except LiveRunError as exc:  # qamoe-live failed: its own code and the line that says why
        print(f"qamoe-plot: {str(exc).splitlines()[0]}", file=sys.stderr)
        return exc.exit_code if exc.exit_code else EXIT_UNEXPECTED
    except ValueError as exc:
        print(f"qamoe-plot: {exc}", file=sys.stderr)
        return EXIT_USAGE
    kept = f" (the recording is in {recording})" if args.record_dir else ""
    print(f"qamoe-plot: wrote {args.out}{kept}", file=sys.stderr)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
