"""Shared plumbing for the command-line mains in tools/: logging set-up and typed errors -> exit codes.

Exit codes: 0 ok; 1 any other typed error (a face bank, speech synthesis, a build step); 2 bad configuration
or arguments; 3 bad or missing data; 4 bad checkpoint; 130 interrupted (SIGINT); 143 terminated (SIGTERM). Every error the package raises on
purpose, core and bridge (`qamoe.build`, `qamoe.corpus`), derives from `QAMoEError`; `EXIT_CODES` maps its
families."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

from qamoe.errors import CheckpointError, ConfigError, DataError, QAMoEError

EXIT_CODES: dict[type[QAMoEError], int] = {ConfigError: 2, DataError: 3, CheckpointError: 4}
EXIT_OTHER = 1
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143


_terminated = threading.Event()  # SIGTERM arrived (run_main's handler)


def _terminate(signum: int, frame: FrameType | None) -> None:
    """SIGTERM, raised in the main thread as Ctrl-C is, so that `finally` blocks run: a corpus tool stops its
    worker pool and keeps what it wrote (with the default action the process ended at once, and its workers
    died on a broken pipe, one traceback each)."""
    _terminated.set()
    raise KeyboardInterrupt


def exit_code(exc: QAMoEError) -> int:
    """The exit code `run_main` gives a typed error: its family's in `EXIT_CODES`, else `EXIT_OTHER`."""
    return next((c for t, c in EXIT_CODES.items() if isinstance(exc, t)), EXIT_OTHER)


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def run_main(main: Callable[[], int | None], *, verbose: bool = False) -> int:
    """Run `main`, turning the package's typed errors into one clear line and an exit code (no traceback
    unless verbose)."""
    main_thread = threading.current_thread() is threading.main_thread()
    before = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    try:
        return int(main() or 0)
    except QAMoEError as e:
        code = exit_code(e)
        logging.getLogger("qamoe").debug("traceback", exc_info=True)
        print(f"error: {e}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        terminated = _terminated.is_set()
        print("terminated" if terminated else "interrupted", file=sys.stderr)
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, before if before is not None else signal.SIG_DFL)
