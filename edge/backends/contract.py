"""The QA-MoE I/O contract as the runtime sees it: names only, never positions.

Mirrors `qamoe.export.INPUT_NAMES` / `OUTPUT_NAMES` (a test asserts they are equal); `edge` cannot import
`qamoe`, so the names are spelt out here once.
"""

from __future__ import annotations

from collections.abc import Iterable

from edge.backends.errors import REBUILD, IOContractError

STREAMS = ("text", "audio", "vision")
MODEL_INPUTS: tuple[str, ...] = tuple(n for s in STREAMS for n in (f"{s}_feats", f"{s}_mask"))
MODEL_OUTPUTS: tuple[str, ...] = (
    "valence",
    "predictive_variance",
    *(f"reliability_{s}" for s in STREAMS),
    "router_weights",
)


def check_io_names(
    inputs: Iterable[str],
    outputs: Iterable[str],
    *,
    source: str,
    expected_inputs: tuple[str, ...] = MODEL_INPUTS,
    expected_outputs: tuple[str, ...] = MODEL_OUTPUTS,
) -> None:
    """Raise IOContractError naming every missing and unexpected tensor of `source` (a file name)."""
    problems = []
    for kind, got, want in (
        ("input", list(inputs), expected_inputs),
        ("output", list(outputs), expected_outputs),
    ):
        missing = [n for n in want if n not in got]
        unexpected = [n for n in got if n not in want]
        if missing:
            problems.append(f"missing {kind}s {missing}")
        if unexpected:
            problems.append(f"unexpected {kind}s {unexpected}")
    if problems:
        raise IOContractError(
            f"{source} breaks the QA-MoE I/O contract ({'; '.join(problems)}): it was not exported by "
            f"this qamoe-live; {REBUILD} --force --only model"
        )
