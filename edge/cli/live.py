"""`qamoe-live`: run the live multimodal sentiment pipeline and publish its estimates over ZeroMQ.

  qamoe-live --camera 0 --mic default                 live devices
  qamoe-live --video-file talk.mp4                     replay both tracks of a file at real time
  qamoe-live --video-file talk.mp4 --fast              as fast as possible, deterministic
  qamoe-live --video-file talk.mp4 --fast --out annotated.mp4   the replay with the overlay drawn on it
  qamoe-live --camera 0 --mic default --preview        watch the overlay live (needs a display)
  qamoe-live --list-devices
  qamoe-tap                                            (another terminal) watch the stream

Exit codes: 0 ended normally (end of file, --duration); 2 bad arguments or configuration; 3 a camera,
microphone or file that cannot be opened; 4 no usable model engine (build it: python tools/build_engine.py);
5 the publish port cannot be bound; 6 the --out file cannot be written (its directory is missing or read-only);
130 interrupted (SIGINT); 143 terminated (SIGTERM).

--out writes to a temporary file beside the target and renames it at the end. SIGINT / SIGTERM end a recording:
the file is then complete and playable, with every frame up to the signal. Any error removes the temporary file:
nothing half-written is left. Overlay: valence gauge (+-1 sd whisker), reliability per modality (hatched: absent),
the window's transcript, backend and fps."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

EXIT_OK, EXIT_USAGE, EXIT_SOURCE, EXIT_MODEL, EXIT_PUBLISH, EXIT_OUTPUT = 0, 2, 3, 4, 5, 6
EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}

log = logging.getLogger("qamoe-live")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qamoe-live", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    src = p.add_argument_group("sources")
    src.add_argument("--camera", default=None, help="index, /dev/videoN, video file, rtsp://..., or none")
    src.add_argument("--mic", default=None, help="default, a device name substring, index, WAV/media file, or none")
    src.add_argument("--video-file", type=Path, help="replay both tracks of one file (camera + microphone)")
    src.add_argument("--fast", action="store_true", help="replay files as fast as possible, deterministically")
    src.add_argument("--list-devices", action="store_true", help="list cameras and audio inputs, then exit")
    src.add_argument("--duration", type=float, help="stop after this many seconds")
    m = p.add_argument_group("model")
    m.add_argument("--backend", default="auto", help="auto | trt | ort | ort-cpu | ort-cuda (default auto)")
    m.add_argument("--engines-dir", type=Path, help="engines directory (default: engines/ of this install)")
    m.add_argument("--asr-model", help="a local faster-whisper model directory (default: the built tiny.en)")
    m.add_argument("--window", type=float, default=4.0, help="window length in seconds (default 4)")
    m.add_argument("--hop", type=float, default=0.5, help="seconds between estimates (default 0.5, at most 1)")
    o = p.add_argument_group("publishing")
    o.add_argument("--endpoint", default="tcp://127.0.0.1:5556", help="ZeroMQ PUB endpoint")
    o.add_argument("--allow-remote", action="store_true", help="allow binding a non-loopback address")
    o.add_argument("--curve-server-key", type=Path, help="server secret key file (enables CURVE)")
    o.add_argument("--curve-clients", type=Path, help="directory of allowed client public keys")
    o.add_argument("--source-id", default=None, help="id carried by every message (default: the source)")
    v = p.add_argument_group("seeing it")
    v.add_argument("--out", type=Path, help="write the video with the overlay to this .mp4 (also .m4v .mov .avi)")
    v.add_argument("--preview", action="store_true", help="show the overlay in a window (when a display exists)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging (with tracebacks)")
    p.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    return p


def _sources(args: argparse.Namespace):
    from edge.sources import CameraKind, MicKind, parse_camera, parse_mic, parse_video_file

    if args.video_file is not None:
        if args.camera or args.mic:
            raise ValueError("--video-file replays both tracks: do not also pass --camera or --mic")
        cam, mic = parse_video_file(str(args.video_file))
    else:
        cam = parse_camera(args.camera if args.camera is not None else "0")
        mic = parse_mic(args.mic if args.mic is not None else "default")
    cam = None if cam.kind is CameraKind.NONE else cam
    mic = None if mic.kind is MicKind.NONE else mic
    if cam is None and mic is None:
        raise ValueError("--camera none and --mic none leaves nothing to analyse: give at least one source")
    return cam, mic


def _video_out(args: argparse.Namespace, cam):
    """The --out / --preview sink (None without them): threaded for live and real-time runs."""
    from edge.pipeline.video_out import sink_for

    if (args.out or args.preview) and cam is None:
        raise ValueError("--out and --preview draw on the video: give a camera or --video-file")
    if args.out and cam.is_file and args.out.resolve() == Path(cam.path).resolve():
        raise ValueError(f"--out {args.out} is the input file: choose another name")
    return sink_for(args.out, args.preview, threaded=not args.fast)


def run(args: argparse.Namespace, stop: threading.Event) -> int:
    from edge.asr.transcriber import AsrConfig
    from edge.backends.base import BackendConfig
    from edge.pipeline.build import PipelineConfig, build
    from edge.pipeline.replay import replay_fast
    from edge.pipeline.runtime import LiveRuntime
    from edge.pipeline.session import Session
    from edge.publish.config import PublisherConfig
    from edge.publish.publisher import Publisher

    cam, mic = _sources(args)
    if args.fast and not ((cam is None or cam.is_file) and (mic is None or mic.is_file)):
        raise ValueError("--fast replays files only: live devices run at their own pace")
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
    with sink or contextlib.nullcontext():  # before the models load: a bad --out fails at once
        comps = build(cfg)
        try:
            with Publisher(pub_cfg) as pub:
                def session(ws):
                    return Session(windows=ws, publisher=pub, model=comps.model, source_id=source_id,
                                   on_result=sink.on_result if sink else None)

                if args.fast:
                    s = replay_fast(comps, session, cam, mic, stop, frame_sink=sink)
                    log.info("replayed %.1f s in %.1f s: %d windows, %d words", s.media_s, s.wall_s, s.windows,
                             s.words)
                    return EXIT_OK
                runtime = LiveRuntime(comps, session, cam, mic, frame_sink=sink)
                out = runtime.run(stop, args.duration)
                log.info("%s: %d windows, %d words published", out.reason, out.windows, out.words)
                return EXIT_OK
        finally:
            comps.close()


def error_code(exc: BaseException) -> int | None:
    """The documented exit code of a typed error, or None for an unexpected one."""
    from edge.backends.errors import BackendError
    from edge.features.spec import FeatureSpecError
    from edge.manifest import ManifestError
    from edge.pipeline.video_out import OutputError
    from edge.publish.errors import PortInUseError, PublishConfigError, PublishError
    from edge.sources.errors import SourceConfigError, SourceError, SourceUriError

    for types, code in (
        ((SourceUriError, SourceConfigError, PublishConfigError, ValueError), EXIT_USAGE),
        ((SourceError,), EXIT_SOURCE),
        ((BackendError, FeatureSpecError, ManifestError), EXIT_MODEL),
        ((PortInUseError, PublishError), EXIT_PUBLISH),
        ((OutputError,), EXIT_OUTPUT),
    ):
        if isinstance(exc, types):
            return code
    try:
        from edge.asr.transcriber import AsrError
        from edge.features.text import TextFeatureError
        from edge.features.visual import VisualConfigError

        if isinstance(exc, AsrError | TextFeatureError | VisualConfigError):
            return EXIT_MODEL
    except ImportError:  # pragma: no cover
        pass
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, lambda *_: log.info("SIGHUP ignored: qamoe-live has no config to reload"))
    try:
        code = run(args, stop)
    except Exception as exc:  # typed errors -> one line and a documented code; anything else is a bug
        code = error_code(exc)
        if code is None:
            log.critical("unexpected error: %s", exc, exc_info=True)
            return 1
        log.debug("details", exc_info=True)
        print(f"qamoe-live: {exc}", file=sys.stderr)
        return code
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
