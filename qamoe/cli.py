"""Shared plumbing for the command-line mains in tools/: logging set-up and typed errors -> exit codes.

Exit codes: 0 ok; 2 bad configuration or arguments; 3 bad or missing data; 4 bad checkpoint; 130 interrupted."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from qamoe.errors import CheckpointError, ConfigError, DataError, QAMoEError

EXIT_CODES: dict[type[QAMoEError], int] = {ConfigError: 2, DataError: 3, CheckpointError: 4}


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
        code = next((c for t, c in EXIT_CODES.items() if isinstance(e, t)), 1)
        logging.getLogger("qamoe").debug("traceback", exc_info=True)
        print(f"error: {e}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
