"""`qamoe.corpus.extract_io.progress`: leaving the block closes the source generator at once, so a worker pool
behind it (qamoe.corpus.jobs.run_jobs) stops where the build stops, not at interpreter exit."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from qamoe.corpus.extract_io import progress


def _source(events: list[str]) -> Iterator[int]:
    try:
        yield from range(5)
        events.append("exhausted")
    finally:
        events.append("closed")


def test_an_error_in_the_block_closes_the_source_before_it_propagates() -> None:
    events: list[str] = []
    with pytest.raises(KeyboardInterrupt), progress(_source(events), total=5) as items:
        for i in items:
            if i == 2:
                events.append("interrupt")
                raise KeyboardInterrupt
    assert events == ["interrupt", "closed"]


def test_a_full_pass_yields_everything_in_order() -> None:
    events: list[str] = []
    with progress(_source(events), total=5) as items:
        assert list(items) == [0, 1, 2, 3, 4]
    assert events == ["exhausted", "closed"]


def test_a_plain_list_needs_no_closing() -> None:
    with progress(["a", "b"]) as items:
        assert list(items) == ["a", "b"]
