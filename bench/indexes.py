"""Upserting a replay's reservations with the table's secondary indexes vs. building them after.

    .venv/bin/python bench/indexes.py [--batches 4] [--rows 123000] [--repeat 2]

A replay writes a batch's reservations as the shadow's PostgreSQL sink does: COPY into a
staging table, then one `INSERT ... ON CONFLICT DO UPDATE` (`--rows` per batch, a third of
them updates of rows of earlier batches, as expiries and orders are). This times the
upserts into the read model's `reservations` table (the migration's own definition, in a
schema of its own) with its secondary indexes in place, against the same upserts without
them followed by building them (`workers.replay.indexes`), alternating, best of
`--repeat`. Prints the seconds of each and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from workers.db.migrate import migrate_connection, quote_ident
from workers.replay import indexes
from workers.settings import load_settings
from workers.sinks.postgres_sink import STAGE_PREFIX, staged_source, staging_ddl

Row = tuple[object, ...]


def reservation(reservation_id: uuid.UUID, rng: random.Random, now: datetime) -> Row:
    created = now - timedelta(seconds=rng.randrange(86_400))
    return (
        reservation_id, uuid.UUID(int=rng.getrandbits(128)), uuid.UUID(int=rng.getrandbits(128)),
        f"customer-{rng.randrange(10**6)}", rng.choice(("VIP", "FRONT", "GENERAL")),
        f"A-{rng.randrange(500)}", "75.50", rng.choice(("active", "expired", "ordered")),
        created, created + timedelta(minutes=15), None, None,
    )  # fmt: skip


def batches(count: int, rows: int, seed: int) -> list[list[Row]]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    written: list[uuid.UUID] = []
    out = []
    for number in range(count):
        updates = rng.sample(written, rows // 3) if number else []
        new = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(rows - len(updates))]
        written += new
        ids = sorted(set(new + updates))
        out.append([reservation(i, rng, now) for i in ids])
    return out


async def one_run(conn: asyncpg.Connection, data: list[list[Row]], deferred: bool) -> float:
    schema = f"bench_indexes_{uuid.uuid4().hex[:8]}"
    s = quote_ident(schema)
    await migrate_connection(conn, schema)
    try:
        if deferred:
            await indexes.defer(conn, schema)
        statement = (
            f"INSERT INTO {s}.reservations SELECT u.*, now() FROM "
            f"{staged_source('reservations')} AS u ON CONFLICT (reservation_id) DO UPDATE SET "
            "status = excluded.status, expired_at = excluded.expired_at, "
            "order_id = excluded.order_id, projected_at = excluded.projected_at"
        )
        seconds = 0.0
        for rows in data:
            async with conn.transaction():
                await conn.execute(staging_ddl())
                await conn.copy_records_to_table(
                    STAGE_PREFIX + "reservations", records=rows, schema_name="pg_temp"
                )
                started = time.perf_counter()
                await conn.execute(statement)
                seconds += time.perf_counter() - started
        if deferred:
            started = time.perf_counter()
            await indexes.build(conn, schema)
            seconds += time.perf_counter() - started
        return seconds
    finally:
        await conn.execute(f"DROP SCHEMA {s} CASCADE")


async def main(args: argparse.Namespace) -> None:
    data = batches(args.batches, args.rows, seed=7)
    conn = await asyncpg.connect(load_settings().postgres_dsn.get_secret_value())
    try:
        best = {False: float("inf"), True: float("inf")}
        for _ in range(args.repeat):
            for deferred in (False, True):
                best[deferred] = min(best[deferred], await one_run(conn, data, deferred))
    finally:
        await conn.close()
    rows = sum(len(b) for b in data)
    print(f"{args.batches} batches, {rows:,} reservation upserts, best of {args.repeat}:")
    print(f"  indexes kept up to date:   {best[False]:.2f}s")
    print(f"  indexes built afterwards:  {best[True]:.2f}s (upserts and the build)")
    print(f"  ratio: {best[False] / best[True]:.2f}x")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--rows", type=int, default=123_000)
    parser.add_argument("--repeat", type=int, default=2)
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
