"""`qamoe-live`: run the live multimodal sentiment pipeline and publish its estimates over ZeroMQ.

  qamoe-live --camera 0 --mic default                 live devices
  qamoe-live --video-file talk.mp4                     replay both tracks of a file at real time
  qamoe-live --video-file talk.mp4 --fast              as fast as possible, deterministic
  qamoe-live --video-file talk.mp4 --loop              replay it again and again at real time (soak tests)
  qamoe-live --video-file talk.mp4 --fast --out annotated.mp4   the replay with the overlay drawn on it
  qamoe-live --camera 0 --mic default --preview        watch the overlay live (needs a display)
  qamoe-live --camera 0 --mic default --share-frames   also publish 2 camera thumbnails a second (qamoe-web --frames)
  qamoe-live --list-devices
  qamoe-tap                                            (another terminal) watch the stream

Exit codes: 0 ended normally (end of file, --duration); 2 bad arguments or configuration (CURVE key files
included); 3 a camera, microphone or file that cannot be opened or decoded (missing, truncated, no frames or
samples, audio outside 8-384 kHz or 1-8 channels); 4 no usable model engine (missing, altered, wrong I/O names
or shapes, another feature spec, a plan for another GPU or TensorRT version: python tools/build_engine.py);
5 the publish port cannot be bound; 6 the --out file cannot be written (its directory is missing or read-only);
129 hung up (SIGHUP: its terminal closed; run it under nohup or a service manager to outlive that);
130 interrupted (SIGINT); 143 terminated (SIGTERM).

--out writes to a temporary file beside the target and renames it at the end. SIGINT / SIGTERM / SIGHUP end a
recording: the file is then complete and playable, with every frame up to the signal. Any error (a full disk
included: the file is read back before the rename) removes the temporary file: nothing half-written is left. Overlay: valence gauge (+-1 sd whisker), reliability per modality (hatched: absent),
the window's transcript, backend and fps."""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

# the exit codes are defined once, in edge/errors.py, with the error categories that carry them
from edge.cli import live_nats
from edge.errors import EXIT_OK, EXIT_UNEXPECTED, EXIT_USAGE, QamoeLiveError, UsageError

# 128 + the signal's number, the shell's convention. SIGHUP stops like SIGTERM: a run whose terminal has gone
# should not hold a camera and a port where nobody sees it (there is no configuration file to reload, and lost
# devices are reopened without being asked).
EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}
if hasattr(signal, "SIGHUP"):
    EXIT_SIGNAL[signal.SIGHUP] = 129

log = logging.getLogger("qamoe-live")


class FlagError(UsageError, ValueError):
    """A flag value or combination that cannot work (exit 2); the message names the flag and the fix."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qamoe-live", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    src = p.add_argument_group("sources")
    src.add_argument("--camera", default=None, help="index, /dev/videoN, video file, rtsp://..., or none")
    src.add_argument("--mic", default=None, help="default, a device name substring, index, WAV/media file, or none")
    # a str, not a Path: Path("rtsp://h/x") would collapse the "//" and hide the scheme from the URI parser
    src.add_argument("--video-file", help="replay both tracks of one file (camera + microphone)")
    src.add_argument("--fast", action="store_true", help="replay files as fast as possible, deterministically")
    src.add_argument("--loop", action="store_true",
                     help="replay files again from the start at their end, timestamps continuing (real time)")
    src.add_argument("--list-devices", action="store_true", help="list cameras and audio inputs, then exit")
    src.add_argument("--duration", type=float, help="stop after this many seconds")
    m = p.add_argument_group("model")
    m.add_argument("--backend", default="auto", help="auto | trt | ort | ort-cpu | ort-cuda (default auto)")
    m.add_argument("--engines-dir", "--model", dest="engines_dir", type=Path,
                   help="engines directory holding the model to run, as built by `tools/build_engine.py "
                   "--engines-dir DIR --checkpoint CKPT` (default: engines/ of this install: the shipped model)")
    m.add_argument("--asr-model", help="a local faster-whisper model directory (default: the built tiny.en)")
    m.add_argument("--window", type=float, default=4.0, help="window length in seconds (default 4)")
    m.add_argument("--hop", type=float, default=0.5, help="seconds between estimates (default 0.5, at most 1)")
    o = p.add_argument_group("publishing")
    o.add_argument("--endpoint", default="tcp://127.0.0.1:5556", help="ZeroMQ PUB endpoint")
    o.add_argument("--allow-remote", action="store_true", help="allow binding a non-loopback address")
    o.add_argument("--curve-server-key", type=Path, help="server secret key file (enables CURVE)")
    o.add_argument("--curve-clients", type=Path, help="directory of allowed client public keys")
    o.add_argument("--source-id", default=None, help="id carried by every message (default: the source)")
    o.add_argument("--share-frames", nargs="?", type=float, const=2.0, default=None, metavar="HZ",
                   help="also publish the camera on qamoe.v1.frame: a small JPEG with the face box, HZ a second "
                   "(default 2, at most 5). Off by default: without it no picture leaves the node")
    live_nats.add_arguments(p)  # --nats URL: also publish to NATS JetStream (an in-process qamoe-bridge)
    v = p.add_argument_group("seeing it")
    v.add_argument("--out", type=Path, help="write the video with the overlay to this .mp4 (also .m4v .mov .avi)")
    v.add_argument("--preview", action="store_true", help="show the overlay in a window (when a display exists)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging (with tracebacks)")
    p.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    return p


def check_args(args: argparse.Namespace) -> None:
    """Flag values that are wrong whatever the sources and engines (FlagError -> exit 2, naming the flag)."""
    from edge.backends.base import BACKEND_CHOICES

    if args.backend not in BACKEND_CHOICES:
        raise FlagError(f"--backend {args.backend!r} is unknown: use one of {', '.join(BACKEND_CHOICES)}")
    if not (math.isfinite(args.window) and args.window > 0):
        raise FlagError(f"--window {args.window}: give a window length in seconds > 0 (default 4)")
    if not (math.isfinite(args.hop) and 0 < args.hop <= 1.0):
        raise FlagError(f"--hop {args.hop}: give 0 < hop <= 1 s, an estimate at least every second (default 0.5)")
    if args.hop > args.window:
        raise FlagError(f"--hop {args.hop} is longer than --window {args.window}: windows would leave gaps; "
                         "give a hop no longer than the window")
    if args.duration is not None and not (math.isfinite(args.duration) and args.duration > 0):
        raise FlagError(f"--duration {args.duration}: give a positive number of seconds, or leave it out")
    if args.loop and args.fast:
        raise FlagError("--loop replays at real time without end: drop --fast (or --loop)")
    if args.share_frames is not None:
        from edge.pipeline.frames import FrameShareConfig

        FrameShareConfig(rate_hz=args.share_frames)  # FrameShareConfigError (exit 2) names the range


def check_window_matches_engines(args: argparse.Namespace) -> None:
    """--window/--hop other than those the engines were built for: refused here with what they are (the
    pipeline would refuse the model as "built for another version of the feature extractors")."""
    from edge.assets import default_engines_dir
    from edge.manifest import MANIFEST_NAME, ManifestError, load_manifest

    path = (args.engines_dir or default_engines_dir()) / MANIFEST_NAME
    try:
        spec = load_manifest(path).sections["feature_spec"]
        built = (float(spec["window_s"]), float(spec["hop_s"]))
    except (ManifestError, KeyError, TypeError, ValueError):
        return  # no usable manifest: the pipeline build says what is wrong with it
    if not (math.isclose(args.window, built[0]) and math.isclose(args.hop, built[1])):
        raise FlagError(
            f"--window {args.window} --hop {args.hop}: the engines in {path.parent} are built for "
            f"{built[0]:g} s windows every {built[1]:g} s; pass those (the defaults), or build engines from a "
            "model trained on features of that window (tools/build_engine.py --checkpoint DIR)"
        )


def _sources(args: argparse.Namespace):
    from edge.sources import (
        CameraKind,
        MicKind,
        SourceNotFoundError,
        parse_camera,
        parse_mic,
        parse_video_file,
    )

    if args.video_file is not None:
        if args.camera or args.mic:
            raise FlagError("--video-file replays both tracks: do not also pass --camera or --mic")
        cam, mic = parse_video_file(args.video_file)
        if cam.path is None or not cam.path.exists():  # (a FILE URI always has its path)
            raise SourceNotFoundError(f"--video-file {cam.path}: no such file; pass a recording with video "
                                      "and sound, or --camera FILE / --mic FILE for one track")
    else:
        cam = parse_camera(args.camera if args.camera is not None else "0")
        mic = parse_mic(args.mic if args.mic is not None else "default")
    camera = None if cam.kind is CameraKind.NONE else cam
    microphone = None if mic.kind is MicKind.NONE else mic
    if camera is None and microphone is None:
        raise FlagError("--camera none and --mic none leaves nothing to analyse: give at least one source")
    return camera, microphone


def _video_out(args: argparse.Namespace, cam):
    """The --out / --preview sink (None without them): threaded for live and real-time runs."""
    from edge.pipeline.video_out import sink_for

    if (args.out or args.preview) and cam is None:
        raise FlagError("--out and --preview draw on the video: give a camera or --video-file")
    if args.out and cam.is_file and args.out.resolve() == Path(cam.path).resolve():
        raise FlagError(f"--out {args.out} is the input file: choose another name")
    return sink_for(args.out, args.preview, threaded=not args.fast)


def _frame_sharer(args: argparse.Namespace, cam, source_id: str):
    """The --share-frames sharer (None without the flag: no picture leaves the node)."""
    from edge.pipeline.frames import FrameShareConfig, FrameSharer

    if args.share_frames is None:
        return None
    if cam is None:
        raise FlagError("--share-frames shares camera frames: give a camera or --video-file (or drop it)")
    log.info("sharing camera frames: %g a second on qamoe.v1.frame", args.share_frames)
    return FrameSharer(FrameShareConfig(rate_hz=args.share_frames), source_id)


def run(args: argparse.Namespace, stop: threading.Event) -> int:
    from edge.asr.transcriber import AsrConfig
    from edge.backends.base import BackendConfig
    from edge.pipeline.build import PipelineConfig, build
    from edge.pipeline.replay import replay_fast
    from edge.pipeline.runtime import LiveRuntime, capture_workers
    from edge.pipeline.session import Session
    from edge.publish.config import PublisherConfig
    from edge.publish.publisher import Publisher
    from edge.sources import ReplayConfig

    check_args(args)
    cam, mic = _sources(args)
    if args.fast and not ((cam is None or cam.is_file) and (mic is None or mic.is_file)):
        raise FlagError("--fast replays files only: live devices run at their own pace")
    if args.loop and not ((cam is None or cam.is_file) and (mic is None or mic.is_file)):
        raise FlagError("--loop replays files only: live devices have no end to start again from")
    check_window_matches_engines(args)
    cfg = PipelineConfig(
        use_video=cam is not None,
        use_audio=mic is not None,
        engines_dir=args.engines_dir,
        backend=BackendConfig(backend=args.backend),
        asr=AsrConfig(model=args.asr_model),
        window_s=args.window,
        hop_s=args.hop,
        deterministic=args.fast,
    )
    pub_cfg = PublisherConfig(
        endpoint=args.endpoint, allow_remote=args.allow_remote,
        curve_server_secret_key_file=args.curve_server_key, curve_allowed_clients_dir=args.curve_clients,
        block_ms=2000 if args.fast else 0,  # fast replay has no clock to keep: wait for slow subscribers
        # flush the last messages on close (a replay ends right after its last window); short when live so a
        # signal still stops everything within 2 s
        linger_ms=1000 if args.fast else 200,
    )
    source_id = args.source_id or str(args.video_file or f"camera={args.camera or 0},mic={args.mic or 'default'}")
    sink = _video_out(args, cam)
    share = _frame_sharer(args, cam, source_id)
    # both before the models load: a bad --out or an unreachable --nats fails at once
    with sink or contextlib.nullcontext(), live_nats.bridge_for(args, FlagError, source_id) as bridge:
        comps = build(cfg)
        try:
            with Publisher(pub_cfg) as pub:
                live_nats.wait_for_bridge(bridge, pub)
                def session(ws):
                    return Session(windows=ws, publisher=pub, model=comps.model, source_id=source_id,
                                   on_result=sink.on_result if sink else None)

                if args.fast:
                    s = replay_fast(comps, session, cam, mic, stop, frame_sink=sink, frame_share=share)
                    log.info("replayed %.1f s in %.1f s: %d windows, %d words", s.media_s, s.wall_s, s.windows,
                             s.words)
                    return EXIT_OK
                video, audio = capture_workers(cam, mic, replay=ReplayConfig(loop=args.loop))
                runtime = LiveRuntime(comps, session, video, audio, frame_sink=sink, frame_share=share)
                out = runtime.run(stop, args.duration)
                log.info("%s: %d windows, %d words published", out.reason, out.windows, out.words)
                return EXIT_OK
        finally:
            comps.close()


def error_code(exc: BaseException) -> int | None:
    """The documented exit code of a typed error (its category's, edge/errors.py), or None for an unexpected
    one."""
    if isinstance(exc, QamoeLiveError):
        return exc.exit_code
    # Every ValueError qamoe-live raises on what it is given is typed (its other bare ones are invariants the
    # pipeline's stages catch), but the libraries under it (PyAV, OpenCV, numpy, onnxruntime, CTranslate2,
    # pyzmq) refuse what they are handed with bare ones, and which of those can reach here cannot be listed:
    # they keep the one-line exit 2 they always had rather than become a crash report.
    if isinstance(exc, ValueError):
        return EXIT_USAGE
    return None


def quiet_native_logs() -> None:
    """OpenCV and its FFmpeg print their own warnings to stderr ("moov atom not found", "ac-tex damaged"):
    at the default level the one-line error says what matters. `-v` keeps them; a user's setting wins."""
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.verbose:
        quiet_native_logs()  # before anything imports cv2
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if args.list_devices:
        from edge.sources import list_devices

        print(list_devices().describe())
        return EXIT_OK
    stop, caught = threading.Event(), []

    def on_signal(signum, _frame) -> None:
        caught.append(signum)
        stop.set()

    for sig in EXIT_SIGNAL:
        signal.signal(sig, on_signal)
    try:
        code = run(args, stop)
    except Exception as exc:  # typed errors -> one line and a documented code; anything else is a bug
        fault = error_code(exc)
        if fault is None:
            log.critical("unexpected error: %s", exc, exc_info=True)
            return EXIT_UNEXPECTED
        log.debug("details", exc_info=True)
        print(f"qamoe-live: {exc}", file=sys.stderr)
        return fault
    return EXIT_SIGNAL.get(caught[0], code) if caught else code


def exit_now(code: int) -> None:
    """Exit with `code`. If a worker thread is still inside native code (a Whisper decode that outlived the
    shutdown wait under heavy load), skip interpreter teardown: destroying CTranslate2 under a running decode
    aborts the process ("terminate called without an active exception") and the exit code would be lost.
    Everything that matters is already closed by then (publisher, output file, devices)."""
    busy = [t.name for t in threading.enumerate() if t.name.startswith("qamoe-") and t.is_alive()]
    if busy:
        log.warning("exiting while %s finishes a decode", ", ".join(busy))
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def console_main() -> None:
    """The `qamoe-live` console script."""
    exit_now(main())


if __name__ == "__main__":
    console_main()
