"""A viewer's bounded slot (edge.web.slot): a few pending updates; past the bound, latest wins: the pending
ones are dropped (counted) and the whole newest state is owed instead."""

from __future__ import annotations

import pytest

from edge.web.slot import LatestSlot, Taken


def test_empty_slot_gives_nothing() -> None:
    slot: LatestSlot[str] = LatestSlot()
    assert slot.take() is None and not slot.pending and slot.dropped == 0
    with pytest.raises(ValueError, match="at least one"):
        LatestSlot(0)


def test_a_viewer_that_keeps_up_gets_every_update_in_order_and_no_resync() -> None:
    slot: LatestSlot[int] = LatestSlot(capacity=4)
    got: list[int] = []
    for burst in ([0], [1, 2, 3], [4, 5, 6, 7]):  # bursts of up to `capacity` between two sends
        for i in burst:
            slot.offer(i)
        taken = slot.take()
        assert taken is not None and not taken.resync
        got.extend(taken.items)
    assert got == list(range(8)) and slot.dropped == 0 and slot.offered == 8


def test_a_viewer_that_falls_behind_gets_the_newest_state_not_a_queue() -> None:
    slot: LatestSlot[int] = LatestSlot(capacity=4)
    for i in range(1000):  # the sender is stuck in a send: nothing taken
        slot.offer(i)
        assert len(slot._items) <= 4  # bounded the whole time
    assert slot.take() == Taken((), resync=True)  # send the whole state as it is now (it includes update 999)
    assert slot.dropped == 1000  # every update it did not get one by one is counted
    assert slot.take() is None
    slot.offer(1000)
    assert slot.take() == Taken((1000,), resync=False)  # caught up again: back to plain updates
