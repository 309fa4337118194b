"""Shared plumbing for the command-line mains in tools/: logging set-up and typed errors -> exit codes.

Exit codes: 0 ok; 1 any other typed error (a face bank, speech synthesis, a build step); 2 bad configuration
or arguments; 3 bad or missing data; 4 bad checkpoint; 130 interrupted. Every error the package raises on
purpose, core and bridge (`qamoe.build`, `qamoe.corpus`), derives from `QAMoEError`; `EXIT_CODES` maps its
families."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from qamoe.errors import CheckpointError, ConfigError, DataError, QAMoEError

EXIT_CODES: dict[type[QAMoEError], int] = {ConfigError: 2, DataError: 3, CheckpointError: 4}
EXIT_OTHER = 1


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
    try:
        return int(main() or 0)
    except QAMoEError as e:
        code = exit_code(e)
        logging.getLogger("qamoe").debug("traceback", exc_info=True)
        print(f"error: {e}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
