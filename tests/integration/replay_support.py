"""Helpers of the replay tests: run `seatflow replay`, watch readers, read copies."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from aiokafka.structs import TopicPartition

from tests.integration.harness import (
    SEATFLOW,
    WorkerProcess,
    pipeline_topics,
    produce,
    settings_env,
)
from workers.db.migrate import quote_ident
from workers.generation import pipeline_for, shadow_prefix, shadow_schema
from workers.kafka_clients import client_kwargs
from workers.loadgen.scenario import UpstreamRecord
from workers.settings import Settings
from workers.sinks.postgres_sink import PostgresSink
from workers.sinks.redis_sink import RedisSink
from workers.topic_catalog import load_catalog
from workers.verify.snapshot import Snapshot
from workers.verify.topics import group_lag, partitions_of


async def replay(settings: Settings, *args: str, within: float = 120) -> list[dict[str, Any]]:
    """Run `seatflow replay --json ARGS` to the end; its JSON lines (fails on exit != 0)."""
    proc = await asyncio.create_subprocess_exec(
        SEATFLOW, "replay", "--json", *args, env=settings_env(settings),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), within)
    assert proc.returncode == 0, f"replay exited {proc.returncode}:\n{err.decode()[-4000:]}"
    return [orjson.loads(line) for line in out.splitlines() if line.strip()]


def summary_of(lines: Sequence[dict[str, Any]]) -> dict[str, Any]:
    found = [line for line in lines if line["type"] == "summary"]
    assert len(found) == 1, lines
    return found[0]


async def trickle(
    settings: Settings,
    records: Sequence[UpstreamRecord],
    size: int,
    pause_s: float,
    until: asyncio.Event,
) -> int:
    """Produce `records` `size` at a time, `pause_s` apart, until `until` is set (events
    still flowing), then the rest at once; return how many went out before `until`."""
    start = 0
    while start < len(records) and not until.is_set():
        await produce(settings, records[start : start + size])
        start += size
        await asyncio.sleep(pause_s)
    flowing = start
    if start < len(records):
        await produce(settings, records[start:])
    return flowing


async def wait_generation_drained(
    settings: Settings, generation: int, worker: WorkerProcess, within: float = 120
) -> None:
    """Until the generation's group has committed all of the sources and its seat-facts."""
    pipeline = pipeline_for(settings, generation)
    topics = pipeline_topics(pipeline.catalog)
    deadline = time.monotonic() + within
    lag: dict[tuple[str, int], int] = {}
    while time.monotonic() < deadline:
        if not worker.alive():
            raise AssertionError(f"worker exited:\n{worker.log_tail()}")
        lag = await group_lag(pipeline.settings, topics)
        if lag and not any(lag.values()):
            return
        await asyncio.sleep(1)
    raise AssertionError(f"generation {generation} not drained, lag {lag}\n{worker.log_tail()}")


async def shadow_models(settings: Settings) -> Snapshot:
    pool = await asyncpg.create_pool(
        settings.postgres_dsn.get_secret_value(), min_size=1, max_size=1
    )
    client = aioredis.from_url(settings.redis_url.get_secret_value(), decode_responses=True)
    try:
        snap = await PostgresSink(pool, shadow_schema(settings.pg_schema)).snapshot()
        snap.hashes = (
            await RedisSink(client, shadow_prefix(settings.redis_prefix)).snapshot()
        ).hashes
        return snap
    finally:
        await client.aclose()
        await pool.close()


async def end_offsets(settings: Settings) -> dict[tuple[str, int], int]:
    """(logical source topic, partition) -> end offset."""
    catalog = load_catalog(settings)
    logical = {spec.name: spec.logical for spec in catalog.sources()}
    tps = await partitions_of(settings, list(logical))
    consumer = AIOKafkaConsumer(**client_kwargs(settings))
    await consumer.start()
    try:
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    return {(logical[tp.topic], tp.partition): offset for tp, offset in ends.items()}


async def delete_records(settings: Settings, before: dict[TopicPartition, int]) -> None:
    """Delete each partition's records below the offset given, as retention would."""
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await admin.start()
    try:
        await admin.delete_records(
            {tp: RecordsToDelete(offset) for tp, offset in before.items()}, timeout_ms=30_000
        )
    finally:
        await admin.close()


async def schema_exists(settings: Settings, schema: str) -> bool:
    conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
    try:
        return bool(await conn.fetchval("SELECT true FROM pg_namespace WHERE nspname = $1", schema))
    finally:
        await conn.close()


async def read_model_indexes(settings: Settings, schema: str) -> dict[str, str]:
    """The indexes of `schema`'s read-model tables (not the replay's bookkeeping): name ->
    definition, the schema's name taken out (comparable across copies)."""
    conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
    try:
        rows = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1 "
            "AND tablename NOT LIKE 'replay\\_%'",
            schema,
        )
    finally:
        await conn.close()
    return {r["indexname"]: r["indexdef"].replace(f"{schema}.", "") for r in rows}


# ---------------------------------------------------------------- readers during the swap

MARKER = "~old-copy-marker"
"""A customer row and a seat-map field that only the old copy has (`mark_old_copy`)."""


async def mark_old_copy(settings: Settings, event: str) -> None:
    """Put a marker in the live copy before the replay: the rebuilt copy will not have it,
    so every read can tell which copy each of its parts came from. The markers keep the
    readers' invariants (no reservation counted; the availability counts the extra seat)."""
    s = quote_ident(settings.pg_schema)
    conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
    try:
        await conn.execute(
            f"INSERT INTO {s}.customer_activity (customer_id, reservations, active_holds, "
            "expirations, orders, total_spent, last_activity_at, projected_at) "
            "VALUES ($1, 0, 0, 0, 0, 0, now(), now())",
            MARKER,
        )
    finally:
        await conn.close()
    p = settings.redis_prefix
    client = aioredis.from_url(settings.redis_url.get_secret_value())
    try:
        async with client.pipeline(transaction=True) as pipe:
            pipe.hset(f"{p}seatmap:{event}", MARKER, "available")
            pipe.hincrby(f"{p}availability:{event}", "total", 1)
            pipe.hincrby(f"{p}availability:{event}", "available", 1)
            await pipe.execute()
    finally:
        await client.aclose()


@dataclass
class Reads:
    """What a reader saw: which copy each read came from, and what broke an invariant."""

    copies_seen: list[bool] = field(default_factory=list)
    """Per read: True for the new copy (the replay's checkpoint is there)."""
    violations: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def copies(self) -> list[bool]:
        """The copy of each read, consecutive repeats collapsed."""
        out: list[bool] = []
        for new in self.copies_seen:
            if not out or out[-1] != new:
                out.append(new)
        return out


async def read_postgres(settings: Settings, marker_topic: str, stop: asyncio.Event) -> Reads:
    """Poll one statement over three tables: the new copy has the replay's checkpoint rows
    (projection_checkpoints), the old copy the marker customer (customer_activity), so a
    read with both or neither mixed copies; and in any complete copy every reservation row
    counts once for its customer (reservations vs customer_activity)."""
    reads = Reads()
    s = quote_ident(settings.pg_schema)
    sql = f"""
        SELECT EXISTS (SELECT 1 FROM {s}.projection_checkpoints WHERE topic = $1) AS new,
               EXISTS (SELECT 1 FROM {s}.customer_activity WHERE customer_id = $2) AS old,
               (SELECT count(*) FROM {s}.reservations) AS reservations,
               (SELECT coalesce(sum(reservations), 0) FROM {s}.customer_activity) AS counted"""
    conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
    try:
        while not stop.is_set():
            try:
                row = await conn.fetchrow(sql, marker_topic, MARKER)
            except asyncpg.PostgresError as exc:
                reads.errors.append(repr(exc))
                await asyncio.sleep(0.05)
                continue
            reads.copies_seen.append(row["new"])
            if row["new"] == row["old"] or row["reservations"] != row["counted"]:
                reads.violations.append(f"postgres: {dict(row)}")
            await asyncio.sleep(0.01)
    finally:
        await conn.close()
    return reads


async def read_redis(
    settings: Settings, marker_topic: str, events: Sequence[str], stop: asyncio.Event
) -> Reads:
    """Poll, in one MULTI, the replay's checkpoint key (new copy) and every concert event's
    seat map (the first one holds the old copy's marker) and availability: a read with
    both markers or neither mixed copies, and in a complete copy the availability counters
    are the seat map's counts by status."""
    reads = Reads()
    p = settings.redis_prefix
    client = aioredis.from_url(settings.redis_url.get_secret_value(), decode_responses=True)
    try:
        while not stop.is_set():
            async with client.pipeline(transaction=True) as pipe:
                pipe.exists(f"{p}checkpoint:seats:{marker_topic}")
                for event in events:
                    pipe.hgetall(f"{p}seatmap:{event}")
                    pipe.hgetall(f"{p}availability:{event}")
                values = await pipe.execute()
            new, rest = bool(values[0]), values[1:]
            reads.copies_seen.append(new)
            if new == (MARKER in rest[0]):
                reads.violations.append(f"redis: new copy {new}, marker {MARKER in rest[0]}")
            for event, seatmap, availability in zip(events, rest[::2], rest[1::2], strict=True):
                statuses = list(seatmap.values())
                want = {
                    "total": len(statuses),
                    **{s: statuses.count(s) for s in ("available", "reserved", "ordered")},
                }
                got = {k: int(availability.get(k, 0)) for k in want}
                if seatmap and got != want:
                    reads.violations.append(f"redis {event}: {got} != {want}")
            await asyncio.sleep(0.01)
    finally:
        await client.aclose()
    return reads
