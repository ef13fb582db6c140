"""PostgresSink beyond the shared contract: atomicity on failure, types, lock order."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal

import asyncpg
import pytest

from tests.integration.sinks.scenario import TOPIC, main_scenario, random_scenario, uid
from workers.projection.model import Mutations, OrderItemRow
from workers.settings import Settings
from workers.sinks.base import PositionedMutations
from workers.sinks.memory import MemorySink
from workers.sinks.postgres_sink import PostgresSink, UnknownOrderError, WritePlan
from workers.verify.snapshot import Snapshot

pytestmark = pytest.mark.integration


async def state(sink: PostgresSink) -> tuple[Snapshot, dict[int, int]]:
    return await sink.snapshot(), await sink.positions(TOPIC)


async def reference_of(entries: list[PositionedMutations]) -> Snapshot:
    memory = MemorySink()
    await memory.apply(TOPIC, entries)
    return Snapshot(tables=memory.snapshot().tables)


def after(
    entries: list[PositionedMutations], partition: int, mutations: Mutations
) -> PositionedMutations:
    """An entry placed after everything of `partition` in `entries`."""
    last = max((e.offset for e in entries if e.partition == partition), default=-1)
    return PositionedMutations(partition, last + 1, mutations)


def bogus_item() -> Mutations:
    """A row the order_items CHECK constraint rejects; order_items is written after
    reservations, so the batch fails half-way through its statements."""
    return Mutations(
        order_items={
            (uid("o"), uid("s")): OrderItemRow(
                order_id=uid("o"), seat_id=uid("s"), reservation_id=uid("r"),
                price=Decimal("1"), status="bogus",
            )
        }
    )  # fmt: skip


async def test_constraint_violation_mid_batch_writes_nothing(pg_sink: PostgresSink) -> None:
    """(g) A statement failing after others succeeded rolls the whole batch back,
    checkpoints included; the batch without the bad entry then applies normally."""
    log = main_scenario().log
    await pg_sink.apply(TOPIC, log[:8])
    before = await state(pg_sink)
    rest = log[8:]
    assert any(e.mutations.reservations for e in rest)  # written before the failure
    bad = [*rest, after(log, 0, bogus_item())]
    with pytest.raises(asyncpg.CheckViolationError):
        await pg_sink.apply(TOPIC, bad)
    assert await state(pg_sink) == before

    result = await pg_sink.apply(TOPIC, rest)
    assert result.applied == len(rest)
    assert not (await pg_sink.snapshot()).differences(await reference_of(log))


async def _fail_after_writes(
    monkeypatch: pytest.MonkeyPatch,
    fail: Callable[[asyncpg.Connection], Awaitable[None]],
) -> None:
    """Make PostgresSink run `fail` after all its table writes, before the checkpoints."""
    original = PostgresSink._write

    async def write_then_fail(
        self: PostgresSink, conn: asyncpg.Connection, plan: WritePlan
    ) -> None:
        await original(self, conn, plan)
        await fail(conn)

    monkeypatch.setattr(PostgresSink, "_write", write_then_fail)


async def test_failure_before_checkpoint_writes_nothing(
    pg_sink: PostgresSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(g) Everything written, then an error before the checkpoint update: no trace."""
    log = main_scenario().log

    async def boom(_conn: asyncpg.Connection) -> None:
        raise RuntimeError("injected")

    await pg_sink.apply(TOPIC, log[:5])
    before = await state(pg_sink)
    with monkeypatch.context() as patch:
        await _fail_after_writes(patch, boom)
        with pytest.raises(RuntimeError, match="injected"):
            await pg_sink.apply(TOPIC, log[5:])
    assert await state(pg_sink) == before
    await pg_sink.apply(TOPIC, log[5:])
    assert not (await pg_sink.snapshot()).differences(await reference_of(log))


async def test_connection_killed_mid_transaction_writes_nothing(
    pg_sink: PostgresSink, migrated_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(g) The server ends our session between the writes and COMMIT (a crash, a
    failover): nothing is kept, and the pool recovers for the retry."""
    log = main_scenario().log
    admin = await asyncpg.connect(migrated_settings.postgres_dsn.get_secret_value())

    async def kill(conn: asyncpg.Connection) -> None:
        await admin.execute("SELECT pg_terminate_backend($1)", conn.get_server_pid())
        await asyncio.sleep(0.05)

    try:
        await pg_sink.apply(TOPIC, log[:5])
        before = await state(pg_sink)
        with monkeypatch.context() as patch:
            await _fail_after_writes(patch, kill)
            with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
                await pg_sink.apply(TOPIC, log[5:])
        assert await state(pg_sink) == before
        await pg_sink.apply(TOPIC, log[5:])
        assert not (await pg_sink.snapshot()).differences(await reference_of(log))
    finally:
        await admin.close()


async def test_expired_items_of_unknown_order_fail_like_memory(pg_sink: PostgresSink) -> None:
    """MemorySink raises KeyError for an expiry count of an order it has no row for;
    PostgresSink refuses it too, instead of silently dropping the count."""
    entry = PositionedMutations(0, 0, Mutations(order_expired_items={uid("ghost-order"): 1}))
    with pytest.raises(KeyError):
        await MemorySink().apply(TOPIC, [entry])
    with pytest.raises(UnknownOrderError):
        await pg_sink.apply(TOPIC, [entry])
    assert await pg_sink.positions(TOPIC) == {}


async def test_money_and_time_columns_have_exact_types(
    pg_sink: PostgresSink, migrated_settings: Settings
) -> None:
    """Money is NUMERIC and times are timestamptz: no float or naive time anywhere."""
    rows = await pg_sink.pool.fetch(
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = $1",
        migrated_settings.pg_schema,
    )
    types = {(r["table_name"], r["column_name"]): r["data_type"] for r in rows}
    assert not {k: t for k, t in types.items() if t in ("real", "double precision", "money")}
    assert not {k: t for k, t in types.items() if t == "timestamp without time zone"}
    for column in (
        ("reservations", "base_price"), ("orders", "total_amount"), ("order_items", "price"),
        ("customer_activity", "total_spent"), ("event_sales_daily", "revenue"),
    ):  # fmt: skip
        assert types[column] == "numeric"


async def test_partitions_in_parallel_share_rows_without_deadlock(
    migrated_settings: Settings,
) -> None:
    """Workers of different partitions write the same order, customer and daily rows at
    once, often creating the same new order row together; the lock order keeps them from
    deadlocking, and all deltas add up. Three rounds (one topic each: the content is
    applied again per topic, in MemorySink too) give races more chances to show."""
    workers, rounds = 4, 3
    projector = random_scenario(3000, partitions=workers, customers=20)
    sinks = [await PostgresSink.connect(migrated_settings) for _ in range(workers)]
    reference = MemorySink()
    try:

        async def worker(topic: str, partition: int) -> None:
            mine = [e for e in projector.log if e.partition == partition]
            for start in range(0, len(mine), 50):
                await sinks[partition].apply(topic, mine[start : start + 50])

        for round_ in range(rounds):
            topic = f"{TOPIC}-{round_}"
            await asyncio.gather(*(worker(topic, p) for p in range(workers)))
            await reference.apply(topic, projector.log)
            assert await sinks[0].positions(topic) == projector.next_offsets
        snap = await sinks[0].snapshot()
        differences = snap.differences(Snapshot(tables=reference.snapshot().tables))
        assert not differences, "\n".join(differences)
    finally:
        for sink in sinks:
            await sink.close()
