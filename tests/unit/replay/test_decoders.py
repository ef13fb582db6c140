"""How a batch is handed to the decoding processes, and how waiting for them is reported."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from workers.replay import decoders
from workers.replay.decoders import DECODE_CHUNK, MIN_CHUNK, decoded, tasks_for
from workers.replay.plan import SourcePartition

CREATED_0 = SourcePartition("reservation-created", 0, "t.created")
CREATED_1 = SourcePartition("reservation-created", 1, "t.created")
ORDERS_0 = SourcePartition("order-placed", 0, "t.orders")


def test_tasks_cover_each_range_once_in_processing_order() -> None:
    ranges = {CREATED_1: (500, 31_000), ORDERS_0: (7, 9), CREATED_0: (0, 45_001)}
    tasks = tasks_for(ranges, processes=2)
    # processing order: partitions sorted, offsets up (what `_prepare` reads in-process)
    order = [(t[0], t[2]) for t in tasks]
    assert order == sorted(order, key=lambda lp: SourcePartition(lp[0], lp[1], ""))
    for sp, (lo, hi) in ranges.items():
        mine = [t for t in tasks if (t[0], t[1], t[2]) == (sp.logical, sp.topic, sp.partition)]
        assert mine[0][3] == lo and mine[-1][4] == hi
        assert all(a[4] == b[3] for a, b in itertools.pairwise(mine))  # no gap
        assert all(0 < t[4] - t[3] <= DECODE_CHUNK for t in mine)


def test_tasks_are_about_two_per_process_and_never_tiny() -> None:
    small = {CREATED_0: (0, 4_000)}
    assert len(tasks_for(small, processes=2)) == 4  # 1,000 records each: 2 per process
    assert len(tasks_for({CREATED_0: (0, 400)}, processes=4)) == 2  # MIN_CHUNK each
    assert all(t[4] - t[3] == MIN_CHUNK for t in tasks_for({CREATED_0: (0, 500)}, 4))
    assert tasks_for({CREATED_0: (5, 5)}, processes=2) == []


async def test_a_long_wait_for_a_decoder_is_reported_until_the_chunk_comes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(decoders, "WAIT_REPORT_S", 0.05)
    said: list[str] = []
    chunk: asyncio.Future[tuple[int, int, list[bytes]]] = asyncio.Future()
    waiting = asyncio.create_task(decoded(("order-placed", "t", 3, 10, 20), chunk, said.append))
    await asyncio.sleep(0.18)
    assert not waiting.done()
    assert len(said) == 3, said
    assert said[0].startswith("a decoding process has been reading order-placed/3 [10, 20)")
    chunk.set_result((10, 0, [b"[]"]))
    assert await waiting == (10, 0, [b"[]"])


async def test_a_prompt_chunk_is_not_reported() -> None:
    said: list[str] = []
    chunk: asyncio.Future[tuple[int, int, list[bytes]]] = asyncio.Future()
    chunk.set_result((1, 1, []))
    assert await decoded(("order-placed", "t", 0, 0, 1), chunk, said.append) == (1, 1, [])
    assert said == []
