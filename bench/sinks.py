"""Throughput of the sinks on realistic batches (a script, not a test).

    .venv/bin/python bench/sinks.py [--batches 200] [--batch-size 1000] [--sinks ...]

Generates `batches * batch_size` positioned mutations with the real seat projection (a
busy box office: catalog, holds, orders, expiries, duplicates; see
tests/integration/sinks/scenario.py), applies them batch by batch to each real sink in a
throwaway PostgreSQL schema / Redis prefix (removed afterwards), and prints entries/s,
rows/s, batches/s and the mean and p95 flush time. "rows" are the keyed writes of the
merged batch that the sink owns (table rows for PostgreSQL; seat hashes, seat-map fields
and availability fields for Redis), i.e. what a flush really has to write after
merging. At the end the sinks' content is checked against MemorySink's.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
import redis.asyncio as aioredis

from tests.integration.sinks.scenario import TOPIC, batches, random_scenario
from workers.db.migrate import migrate, quote_ident
from workers.projection.model import Mutations
from workers.settings import Settings, load_settings
from workers.sinks.base import PositionedMutations, Sink, merged
from workers.sinks.memory import MemorySink
from workers.sinks.postgres_sink import PostgresSink, plan_writes
from workers.sinks.redis_sink import RedisSink
from workers.verify.snapshot import Snapshot


@dataclass
class Result:
    sink: str
    entries: int
    rows: int
    seconds: float
    flush_ms: list[float]

    def line(self) -> str:
        ms = sorted(self.flush_ms)
        p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
        per_s = self.seconds
        return (
            f"{self.sink:<9} {self.entries / per_s:>11,.0f} {self.rows / per_s:>10,.0f}"
            f" {len(ms) / per_s:>10,.1f} {statistics.fmean(ms):>10.2f} {p95:>8.2f}"
        )


def redis_rows(m: Mutations) -> int:
    return (
        len(m.seats) + len(m.seatmap_set) + len(m.seatmap_del)
        + len(m.availability_fields | set(m.availability))
    )  # fmt: skip


async def run(sink: Sink, chunks: Sequence[Sequence[PositionedMutations]], rows: int) -> Result:
    times: list[float] = []
    start = time.perf_counter()
    for chunk in chunks:
        t = time.perf_counter()
        await sink.apply(TOPIC, chunk)
        times.append((time.perf_counter() - t) * 1000)
    seconds = time.perf_counter() - start
    return Result(sink.name, sum(len(c) for c in chunks), rows, seconds, times)


async def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--sinks", default="memory,postgres,redis")
    parser.add_argument("--no-verify", action="store_true", help="skip the content check")
    args = parser.parse_args(argv)
    wanted = args.sinks.split(",")
    total = args.batches * args.batch_size

    t = time.perf_counter()
    seats_per_event = 2500
    events = max(1, total // (4 * seats_per_event))
    projector = random_scenario(
        max(0, total - events * seats_per_event),
        events=events, seats_per_event=seats_per_event, customers=5000, partitions=8,
    )  # fmt: skip
    log = projector.log[:total]
    chunks = list(batches(log, args.batch_size))
    merged_chunks = [merged(chunk) for chunk in chunks]
    pg_rows = sum(plan_writes(m).rows() for m in merged_chunks)
    rd_rows = sum(redis_rows(m) for m in merged_chunks)
    print(
        f"{len(log):,} entries in {len(chunks)} batches of {args.batch_size} "
        f"(generated in {time.perf_counter() - t:.1f}s); rows after merging: "
        f"postgres {pg_rows:,}, redis {rd_rows:,}"
    )

    base = load_settings()
    tag = "bench_" + uuid.uuid4().hex[:8]
    settings: Settings = base.model_copy(
        update={"pg_schema": f"rm_{tag}", "redis_prefix": f"{tag}:sf:"}
    )
    reference = MemorySink()
    results: list[Result] = []
    try:
        if "memory" in wanted:
            results.append(await run(reference, chunks, pg_rows + rd_rows))
        elif not args.no_verify:
            await reference.apply(TOPIC, log)
        if "postgres" in wanted:
            await migrate(settings.postgres_dsn.get_secret_value(), settings.pg_schema)
            pg = await PostgresSink.connect(settings)
            try:
                results.append(await run(pg, chunks, pg_rows))
                if not args.no_verify:
                    check("postgres", Snapshot(tables=(await pg.snapshot()).tables),
                          Snapshot(tables=reference.snapshot().tables))  # fmt: skip
            finally:
                await pg.close()
        if "redis" in wanted:
            rs = await RedisSink.connect(settings)
            try:
                results.append(await run(rs, chunks, rd_rows))
                if not args.no_verify:
                    check("redis", Snapshot(hashes=(await rs.snapshot()).hashes),
                          Snapshot(hashes=reference.snapshot().hashes))  # fmt: skip
            finally:
                await rs.close()
    finally:
        await cleanup(settings)

    header = ("entries/s", 11), ("rows/s", 10), ("batches/s", 10), ("mean ms", 10), ("p95 ms", 8)
    print(f"{'sink':<9}" + "".join(f" {name:>{width}}" for name, width in header))
    for result in results:
        print(result.line())
    return 0


def check(name: str, got: Snapshot, want: Snapshot) -> None:
    differences = got.differences(want, limit=5)
    print(f"{name}: content {'equals MemorySink' if not differences else 'DIFFERS'}")
    for line in differences:
        print("  ", line)


async def cleanup(settings: Settings) -> None:
    conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(settings.pg_schema)} CASCADE")
    finally:
        await conn.close()
    client = aioredis.from_url(settings.redis_url.get_secret_value())
    try:
        keys = [k async for k in client.scan_iter(match=f"{settings.redis_prefix}*", count=1000)]
        for start in range(0, len(keys), 1000):
            await client.delete(*keys[start : start + 1000])
    finally:
        await client.aclose()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
