"""The QA-MoE I/O contract as the runtime sees it: names only, never positions.

Mirrors `qamoe.export.INPUT_NAMES` / `OUTPUT_NAMES` (a test asserts they are equal); `edge` cannot import
`qamoe`, so the names are spelt out here once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from edge.backends.errors import REBUILD, IOContractError
from edge.vocab import MODALITIES as STREAMS

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


def spec_input_shapes(feature_spec: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """The non-batch shape of every model input under a feature spec (a `qamoe-feature-spec` dict, as the
    manifest's `feature_spec` section holds it): `{s}_feats` (steps, columns), `{s}_mask` (steps,)."""
    out: dict[str, tuple[int, ...]] = {}
    for s in STREAMS:
        steps, dim = int(feature_spec[s]["max_steps"]), len(feature_spec[s]["columns"])
        out[f"{s}_feats"], out[f"{s}_mask"] = (steps, dim), (steps,)
    return out


def check_io_shapes(
    shapes: Mapping[str, tuple[int | str, ...]], expected: Mapping[str, tuple[int, ...]], *, source: str
) -> None:
    """Raise IOContractError when an input's fixed (non-batch) axes differ from `expected`; dynamic axes
    (a name, or -1 as TensorRT reports them) match anything."""
    wrong = []
    for name, want in expected.items():
        got = tuple(shapes.get(name, ()))[1:]
        if len(got) != len(want) or any(isinstance(g, int) and g >= 0 and g != w for g, w in zip(got, want)):
            wrong.append(f"{name} {list(got)} (needs {list(want)})")
    if wrong:
        raise IOContractError(
            f"{source} takes inputs of other shapes than this qamoe-live's windows: {'; '.join(wrong)}: it was "
            "exported for another window length or feature set; rebuild it from a checkpoint trained on "
            "features of this qamoe-live: `python tools/build_engine.py --checkpoint DIR --force --only model`"
        )
