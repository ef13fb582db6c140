"""The BatchGate the agents pass through: batches in hand finish, new ones park."""

from __future__ import annotations

import asyncio

from workers.shutdown import BatchGate


async def test_draining_lets_the_batch_in_hand_finish_and_parks_the_next() -> None:
    gate = BatchGate()
    finished: list[str] = []
    release = asyncio.Event()

    async def in_hand() -> None:
        async with gate.batch():
            await release.wait()
            finished.append("in hand")

    async def next_batch() -> None:
        async with gate.batch():
            finished.append("next")  # must never run once draining

    first = asyncio.create_task(in_hand())
    await asyncio.sleep(0)
    assert gate.in_flight == 1
    gate.close()
    parked = asyncio.create_task(next_batch())
    waiting = asyncio.create_task(gate.wait_idle(5))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    release.set()
    assert await waiting is True
    await first
    assert finished == ["in hand"] and gate.in_flight == 0
    await asyncio.sleep(0.05)
    assert not parked.done()  # parked until Faust's stop cancels it
    parked.cancel()
    await asyncio.gather(parked, return_exceptions=True)
    assert finished == ["in hand"] and gate.in_flight == 0


async def test_wait_idle_gives_up_at_its_bound() -> None:
    gate = BatchGate()
    stuck = asyncio.Event()

    async def forever() -> None:
        async with gate.batch():
            await stuck.wait()

    task = asyncio.create_task(forever())
    await asyncio.sleep(0)
    gate.close()
    assert await gate.wait_idle(0.05) is False
    task.cancel()  # what Faust's stop does; the count stays right
    await asyncio.gather(task, return_exceptions=True)
    assert gate.in_flight == 0
    assert await gate.wait_idle(0.05) is True
