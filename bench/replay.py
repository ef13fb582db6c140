"""Replay throughput: N upstream events rebuilt into a fresh shadow copy of all read models.

    .venv/bin/python bench/replay.py [--events 1000000] [--batch-events N] [--swap]
                                     [--profile out.prof] [--keep]

1. Data set. N upstream-shaped events (`workers.loadgen.scenario`, keyed and partitioned
   as upstream does) in the four source topics of the prefix `bench-replay-<N>-<seed>.`.
   Generating them is slow (the generator is plain Python, ~100 us an event here), so the
   topics are kept and reused by later runs with the same N and seed (checked by their end
   offsets); they are generated in shards of different seeds, one process per core, and
   produced once. `--drop-data` removes them at the end.
2. Replay. `workers.replay.runner.Replay` in this process, exactly what `seatflow replay
   --no-swap` runs (`--swap`: with the fence and the swap too), into a fresh schema and
   prefix of this run: fetch + decode, the seat state machine, the changelog, both sinks.
   Timed from start to the last sink write.
3. Figures: events, seconds, events/s, and the seconds of each phase: `fetch` (waiting
   for records this process reads: without decoding processes only), `decode` (decoding,
   or waiting for the decoding processes, which read their records themselves), `project`
   (the seat state machine), `encode` (seat states); `changelog` and `sinks` run in the
   background while the next batch is folded, `sinks_wait` is the time a batch waited
   for the previous batch's changelog and sinks (`sinks_postgres` and `sinks_redis`: each
   store's share). `cpu_s` is this process's CPU time: on a shared machine it says more
   than the wall clock about what a change saved. `--profile` writes cProfile data of
   the replay and prints the top functions.

Everything of the run (schema, keys, the generation's topics) is removed unless `--keep`.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import resource
import sys
import time
import uuid
from concurrent.futures import ProcessPoolExecutor

import asyncpg
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from workers.generation import CONTROL_SCHEMA, old_prefix, shadow_prefix
from workers.kafka_clients import client_kwargs
from workers.loadgen.scenario import ScenarioShape, scenario
from workers.replay.progress import LineReporter
from workers.replay.runner import Options, Replay
from workers.settings import Settings, StoreKind, load_settings
from workers.topic_admin import apply as apply_topics
from workers.topic_catalog import load_catalog
from workers.verify.topics import partitions_of

EVENTS_PER_RESERVATION = 2.058
"""Records per reservation of the default scenario ratios (see bench/throughput.py)."""
SHARD_EVENTS = 125_000
SEATS_PER_RESERVATION = 0.6
"""Seats a shard needs per reservation so that it never runs out (45% of reservations
end in an order, which takes the seat for good)."""


def shard(seed: int, events: int) -> list[tuple[str, bytes, bytes, int]]:
    reservations = max(1, int(events / EVENTS_PER_RESERVATION))
    events_needed = max(1, int(reservations * SEATS_PER_RESERVATION / 700) + 1)
    shape = ScenarioShape(concert_events=events_needed, reservations=reservations)
    return [(r.topic, r.key, r.value, r.partition(4)) for r in scenario(seed, shape)]


async def ensure_data(settings: Settings, events: int, seed: int) -> int:
    """Produce the data set unless its topics already hold it; return its record count."""
    catalog = load_catalog(settings)
    names = [spec.name for spec in catalog.sources()]
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
    finally:
        await admin.close()
    if set(names) <= existing:
        count = await _count(settings, names)
        if count >= events * 0.95:
            print(f"data: reusing {count:,} records under {settings.topic_prefix}*", flush=True)
            return count
        raise SystemExit(f"{settings.topic_prefix}* holds {count:,} records: --drop-data first")
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await admin.start()
    try:
        await apply_topics(catalog, admin)
    finally:
        await admin.close()
    shards = max(1, round(events / SHARD_EVENTS))
    started = time.monotonic()
    print(f"data: generating ~{events:,} events in {shards} shards", flush=True)
    loop = asyncio.get_running_loop()
    producer = AIOKafkaProducer(
        **client_kwargs(settings), linger_ms=20, max_batch_size=1024 * 1024, acks="all"
    )
    await producer.start()
    count = 0
    try:
        with ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            futures = [
                loop.run_in_executor(pool, shard, seed * 1000 + i, events // shards)
                for i in range(shards)
            ]
            for future in asyncio.as_completed(futures):
                records = await future
                sends = []
                for topic, key, value, partition in records:
                    name = catalog.get(topic).name
                    sends.append(await producer.send(name, value, key=key, partition=partition))
                await asyncio.gather(*sends)
                count += len(records)
                print(f"  {count:,} produced ({time.monotonic() - started:.0f}s)", flush=True)
    finally:
        await producer.stop()
    print(f"data: {count:,} records in {time.monotonic() - started:.0f}s", flush=True)
    return count


async def _count(settings: Settings, topics: list[str]) -> int:
    tps = await partitions_of(settings, topics)
    consumer = AIOKafkaConsumer(**client_kwargs(settings))
    await consumer.start()
    try:
        starts = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    return sum(ends[tp] - starts[tp] for tp in tps)


async def cleanup(settings: Settings, *, data: bool) -> None:
    conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
    try:
        for schema in (
            settings.pg_schema,
            f"{settings.pg_schema}_shadow",
            f"{settings.pg_schema}_old",
        ):
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        if await conn.fetchval("SELECT to_regclass($1)", f"{CONTROL_SCHEMA}.generations"):
            await conn.execute(
                f"DELETE FROM {CONTROL_SCHEMA}.generations WHERE read_model_schema = $1",
                settings.pg_schema,
            )
    finally:
        await conn.close()
    client = aioredis.from_url(settings.redis_url.get_secret_value())
    try:
        live = settings.redis_prefix
        for prefix in (live, shadow_prefix(live), old_prefix(live)):
            keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=5000)]
            for i in range(0, len(keys), 1000):
                await client.unlink(*keys[i : i + 1000])
    finally:
        await client.aclose()
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await admin.start()
    try:
        topics = await admin.list_topics()
        group = settings.consumer_group
        doomed = [t for t in topics if t.startswith(settings.topic_prefix) and group in t]
        if data:
            doomed = [t for t in topics if t.startswith(settings.topic_prefix)]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


async def main(args: argparse.Namespace) -> None:
    run_id = uuid.uuid4().hex[:8]
    settings = load_settings().model_copy(
        update={
            "topic_prefix": f"bench-replay-{args.events}-{args.seed}.",
            "consumer_group": f"bench-replay-{run_id}",
            "pg_schema": f"bench_replay_{run_id}",
            "redis_prefix": f"bench-replay-{run_id}:sf:",
            "store": StoreKind.MEMORY,
        }
    )
    count = await ensure_data(settings, args.events, args.seed)
    options = Options(
        batch_events=args.batch_events, swap=args.swap, decode_processes=args.decode_processes
    )
    replay = Replay(settings, options, LineReporter(sys.stdout, interval_s=10))
    profiler = cProfile.Profile() if args.profile else None
    try:
        if profiler:
            profiler.enable()
        started, usage_started = time.monotonic(), resource.getrusage(resource.RUSAGE_SELF)
        summary = await replay.run()
        elapsed = time.monotonic() - started
        usage = resource.getrusage(resource.RUSAGE_SELF)
        user_s = usage.ru_utime - usage_started.ru_utime
        sys_s = usage.ru_stime - usage_started.ru_stime
        cpu = user_s + sys_s
        faults = usage.ru_minflt - usage_started.ru_minflt
        if profiler:
            profiler.disable()
    finally:
        if not args.keep:
            await cleanup(settings, data=args.drop_data)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("\n".join(summary.lines()))
    rate = summary.events_read / elapsed
    print(
        f"\nRESULT {summary.events_read:,} events (of {count:,}) into all read models in "
        f"{elapsed:.1f}s: {rate:,.0f} events/s; {summary.facts:,} facts, "
        f"{summary.seats:,} seats, {summary.batches} batches of {args.batch_events:,}; "
        f"this process used {cpu:.1f}s of CPU ({user_s:.1f}s user, {sys_s:.1f}s system, "
        f"{faults:,} page faults), {peak_mb:,.0f} MB at most"
    )
    print(json.dumps({"events": summary.events_read, "seconds": round(elapsed, 2),
                      "events_per_s": round(rate), "cpu_s": round(cpu, 1),
                      "user_s": round(user_s, 1), "sys_s": round(sys_s, 1), "faults": faults,
                      "peak_mb": round(peak_mb), "batch_events": args.batch_events,
                      "phases": summary.phases}))  # fmt: skip
    if profiler:
        profiler.dump_stats(args.profile)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--batch-events", type=int, default=Options().batch_events)
    parser.add_argument(
        "--decode-processes", type=int, help="as `seatflow replay --decode-processes`"
    )
    parser.add_argument("--swap", action="store_true", help="fence and swap at the end too")
    parser.add_argument("--profile", metavar="FILE", help="write cProfile data of the replay")
    parser.add_argument("--keep", action="store_true", help="keep the run's copy and topics")
    parser.add_argument("--drop-data", action="store_true", help="also delete the data set")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
