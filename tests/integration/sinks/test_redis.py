"""RedisSink beyond the shared contract: the WATCH race, key layout, prefix isolation."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest
import redis.asyncio as aioredis
import redis.exceptions

from tests.integration.sinks.scenario import TOPIC, main_scenario
from workers.projection.model import Mutations, SeatRecord
from workers.replay.shadow import ShadowRedisSink
from workers.settings import Settings
from workers.sinks import redis_sink as redis_sink_module
from workers.sinks.base import PositionedMutations, merged
from workers.sinks.memory import MemorySink
from workers.sinks.redis_sink import RedisSink
from workers.verify.snapshot import Snapshot

pytestmark = pytest.mark.integration


def apply_in_another_worker(settings: Settings, batch: Sequence[PositionedMutations]) -> None:
    """Apply `batch` with a separate RedisSink, on its own connection, thread and event
    loop: a second worker writing while the first is between WATCH and EXEC."""

    async def run() -> None:
        other = await RedisSink.connect(settings)
        try:
            await other.apply(TOPIC, batch)
        finally:
            await other.close()

    thread = threading.Thread(target=asyncio.run, args=(run(),))
    thread.start()
    thread.join()


async def expected(entries: Sequence[PositionedMutations]) -> Snapshot:
    memory = MemorySink()
    await memory.apply(TOPIC, entries)
    return Snapshot(hashes=memory.snapshot().hashes)


@pytest.mark.parametrize("concurrent_part", ["all", "first_half"])
async def test_checkpoint_moved_between_watch_and_exec(
    redis_sink: RedisSink,
    migrated_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    concurrent_part: str,
) -> None:
    """(g) Another worker applies (part of) the same batch after our checkpoint read:
    EXEC fails, nothing of ours is written, and the retry applies only what is still
    new, so no entry is applied twice."""
    log = main_scenario().log
    others = log if concurrent_part == "all" else log[: len(log) // 2]
    calls = 0

    def merged_with_interference(entries: Sequence[PositionedMutations]) -> object:
        nonlocal calls
        calls += 1
        if calls == 1:  # we hold WATCH on the checkpoint and have read it
            apply_in_another_worker(migrated_settings, others)
        return merged(entries)

    monkeypatch.setattr(redis_sink_module, "merged", merged_with_interference)
    result = await redis_sink.apply(TOPIC, log)
    assert redis_sink.watch_retries == 1
    assert result.applied == len(log) - len(others)
    assert result.skipped == len(others)
    differences = (await redis_sink.snapshot()).differences(await expected(log))
    assert not differences, "\n".join(differences)
    assert await redis_sink.positions(TOPIC) == await memory_positions(log)


async def memory_positions(entries: Sequence[PositionedMutations]) -> dict[int, int]:
    memory = MemorySink()
    await memory.apply(TOPIC, entries)
    return await memory.positions(TOPIC)


async def test_keys_and_checkpoint_layout(
    redis_sink: RedisSink, migrated_settings: Settings
) -> None:
    """Keys follow the contract under the configured prefix; the checkpoint hash maps
    partition to next offset and is not part of the snapshot."""
    projector = main_scenario()
    await redis_sink.apply(TOPIC, projector.log)
    prefix = migrated_settings.redis_prefix
    client = redis_sink.client
    checkpoint = await client.hgetall(f"{prefix}checkpoint:seats:{TOPIC}")
    assert checkpoint == {str(p): str(o) for p, o in projector.next_offsets.items()}
    snap = await redis_sink.snapshot()
    assert {k.split(":")[0] for k in snap.hashes} == {"seat", "seatmap", "availability"}
    keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
    assert len(keys) == len(snap.hashes) + 1


async def test_prefixes_are_isolated(migrated_settings: Settings) -> None:
    """Two prefixes (e.g. contract v1 and v2, or two tests) never see each other, even
    when one prefix is a glob-looking string."""
    client = aioredis.from_url(migrated_settings.redis_url.get_secret_value())
    a = RedisSink(client, migrated_settings.redis_prefix + "a*:")
    b = RedisSink(client, migrated_settings.redis_prefix + "ab:")
    try:
        log = main_scenario().log
        await a.apply(TOPIC, log)
        assert (await b.snapshot()).hashes == {}
        assert await b.positions(TOPIC) == {}
        assert not (await a.snapshot()).differences(await expected(log))
    finally:
        await client.aclose()


def free_seat(seat_id: str, event: str, number: int) -> SeatRecord:
    return SeatRecord(
        seat_id=seat_id, status="available", reservation_id=None, customer_id=None,
        concert_event_id=event, section="A", seat_number=str(number), expires_at=None,
    )  # fmt: skip


async def test_large_seat_maps_are_written_in_pieces(redis_sink: RedisSink) -> None:
    """A seat map of more fields than one HSET / HDEL of the write script takes (500),
    and more than Lua's `unpack` could pass in one call (4,000), is written and trimmed
    in several calls, with the same result as MemorySink."""
    event = "e" * 32
    seats = [f"{i:032x}" for i in range(4_321)]
    first = Mutations(
        seatmap_set={(event, s): "available" for s in seats},
        seats={s: free_seat(s, event, i) for i, s in enumerate(seats)},
    )
    second = Mutations(
        seatmap_set={(event, s): "reserved" for s in seats[:2_600]},
        seatmap_del={(event, s) for s in seats[2_600:4_207]},
    )
    log = [PositionedMutations(0, 0, first), PositionedMutations(0, 1, second)]
    for entry in log:
        await redis_sink.apply(TOPIC, [entry])
    snap = await redis_sink.snapshot()
    assert len(snap.hashes[f"seatmap:{event}"]) == 2_714
    differences = snap.differences(await expected(log))
    assert not differences, "\n".join(differences)


async def test_a_failing_value_piece_of_a_shadow_batch_fails_it_with_nothing_left_running(
    migrated_settings: Settings,
) -> None:
    """The replay's shadow sink sends its value pieces two at a time. One that fails (a
    key of another type in the way) fails the batch once the piece in flight beside it
    has ended: no write is left running behind the error, the counters and the checkpoint
    are not written, and the batch applies in full once the obstacle is gone."""
    sink = await ShadowRedisSink.connect(migrated_settings)
    sink.piece_size = 10
    try:
        events = [f"{i:032x}" for i in range(95)]  # one seat map each: 10 pieces of them
        seat = "5" * 32
        m = Mutations(
            seatmap_set={(e, seat): "available" for e in events},
            availability={(events[0], "total"): 1},
        )
        blocked = f"{sink.prefix}seatmap:{events[42]}"
        await sink.client.set(blocked, "not a hash")
        batch = [PositionedMutations(0, 0, m)]
        with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE"):
            await sink.apply(TOPIC, batch)
        assert not [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert await sink.positions(TOPIC) == {}
        assert not await sink.client.exists(f"{sink.prefix}availability:{events[0]}")
        maps = [e for e in events if await sink.client.exists(f"{sink.prefix}seatmap:{e}")]
        assert maps[:40] == events[:40]  # the pieces before the failing one were written

        await sink.client.delete(blocked)
        await sink.apply(TOPIC, batch)
        differences = (await sink.snapshot()).differences(await expected(batch))
        assert not differences, "\n".join(differences)
        assert await sink.positions(TOPIC) == {0: 1}
    finally:
        await sink.close()
