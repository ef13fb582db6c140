"""`seatflow verify`: compare two copies of the read models, or a copy with the topics.

Copies: `live` (SEATFLOW_PG_SCHEMA / SEATFLOW_REDIS_PREFIX), `shadow` (what `seatflow
replay` is building) and `old` (what the last swap replaced); `topics` is the reference
fold of the source topics (workers/verify/reference.py), which shares nothing with the
workers but the decoder. Against the topics, a shadow is compared with a fold of exactly
the records its recorded batches cover; any other copy with a fold of every record up to
the end offsets now (from `--from`), so compare a live copy once the workers have drained.

Exit codes: 0 equal, 1 different, 2 usage or a copy that does not exist, 3 Kafka unreachable
(reading the topics).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
import redis.asyncio as aioredis
from aiokafka.errors import KafkaError

from workers.generation import (
    old_prefix,
    old_schema,
    schema_exists,
    shadow_prefix,
    shadow_schema,
)
from workers.kafka_reading import KafkaSilent
from workers.settings import Settings, load_settings
from workers.verify.compare import compare
from workers.verify.snapshot import Snapshot

EXIT_EQUAL, EXIT_DIFFERENT, EXIT_USAGE, EXIT_KAFKA = 0, 1, 2, 3
COPIES = ("live", "shadow", "old")


class VerifyError(Exception):
    pass


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="compare two read-model copies, or a copy with a fold of the topics",
        description="Compare read-model copies: per PostgreSQL table the row count and a "
        "content hash, per Redis key family (seat, seatmap, availability) the key count "
        "and a content hash, then the first differences. projected_at is left out.",
        epilog="Exit codes: 0 equal, 1 different, 2 usage or a missing copy, 3 Kafka "
        "unreachable (--against topics; it waits 60 s for an answer).",
    )
    parser.add_argument("--copy", choices=COPIES, default="live", help="default: live")
    parser.add_argument(
        "--against", choices=(*COPIES, "topics"), default="shadow", help="default: shadow"
    )
    parser.add_argument(
        "--models", choices=["all", "postgres", "redis"], default="all", help="default: all"
    )
    parser.add_argument(
        "--from",
        dest="from_spec",
        metavar="WHEN",
        help="with --against topics: fold only records at/after WHEN (for a copy built "
        "with `seatflow replay --from`); same forms as replay's --from",
    )
    parser.add_argument("--limit", type=int, default=20, help="differences shown (default 20)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def names_of(settings: Settings, copy: str) -> tuple[str, str]:
    schema, prefix = settings.pg_schema, settings.redis_prefix
    if copy == "shadow":
        return shadow_schema(schema), shadow_prefix(prefix)
    if copy == "old":
        return old_schema(schema), old_prefix(prefix)
    return schema, prefix


async def load_copy(settings: Settings, copy: str, *, postgres: bool, redis: bool) -> Snapshot:
    """A copy's content; VerifyError if its schema does not exist."""
    from workers.sinks.postgres_sink import PostgresSink
    from workers.sinks.redis_sink import RedisSink

    schema, prefix = names_of(settings, copy)
    snap = Snapshot()
    pool = await asyncpg.create_pool(
        settings.postgres_dsn.get_secret_value(), min_size=1, max_size=1
    )
    try:
        if postgres:
            async with pool.acquire() as conn:
                if not await schema_exists(conn, schema):
                    raise VerifyError(f"no {copy} copy: schema {schema} does not exist")
            snap.tables = (await PostgresSink(pool, schema).snapshot()).tables
    finally:
        await pool.close()
    if redis:
        client = aioredis.from_url(settings.redis_url.get_secret_value(), decode_responses=True)
        try:
            snap.hashes = (await RedisSink(client, prefix).snapshot()).hashes
        finally:
            await client.aclose()
    return snap


async def load_topics(settings: Settings, copy: str, from_spec: str | None) -> Snapshot:
    """The fold of the records the copy should hold (see the module docstring)."""
    from aiokafka import AIOKafkaConsumer

    from workers.kafka_clients import client_kwargs
    from workers.replay.plan import EARLIEST, parse_point
    from workers.topic_catalog import load_catalog
    from workers.verify.reference import fold
    from workers.verify.topics import partitions_of, read_sources

    catalog = load_catalog(settings)
    records = await read_sources(settings, catalog)
    keep: dict[tuple[str, int], tuple[int, int | None]] = {}
    if copy == "shadow" and from_spec is None:
        keep = await _shadow_ranges(settings)
    elif from_spec is not None:
        point = parse_point(from_spec, now=datetime.now(UTC), allow=EARLIEST)
        logical = {spec.name: spec.logical for spec in catalog.sources()}
        tps = await partitions_of(settings, list(logical))
        consumer = AIOKafkaConsumer(**client_kwargs(settings))
        await consumer.start()
        try:
            ends = await consumer.end_offsets(tps)
            if point == EARLIEST:
                starts = await consumer.beginning_offsets(tps)
            else:
                assert isinstance(point, datetime)
                found = await consumer.offsets_for_times(
                    dict.fromkeys(tps, int(point.timestamp() * 1000))
                )
                starts = {tp: found[tp].offset if found.get(tp) else ends[tp] for tp in tps}
        finally:
            await consumer.stop()
        keep = {(logical[tp.topic], tp.partition): (starts[tp], None) for tp in tps}
    if keep:
        records = [r for r in records if _within(keep.get((r.topic, r.partition)), r.offset)]
    return fold(records)


def _within(bounds: tuple[int, int | None] | None, offset: int) -> bool:
    if bounds is None:
        return False
    first, end = bounds
    return first <= offset and (end is None or offset < end)


async def _shadow_ranges(settings: Settings) -> dict[tuple[str, int], tuple[int, int | None]]:
    """Per source partition, [first, last) offset the shadow's recorded batches cover."""
    from workers.db.migrate import quote_ident

    schema = quote_ident(shadow_schema(settings.pg_schema))
    conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
    try:
        if not await conn.fetchval("SELECT to_regclass($1)", f"{schema}.replay_batches"):
            raise VerifyError("the shadow has no recorded batches to compare with the topics")
        rows = await conn.fetch(f"SELECT ranges FROM {schema}.replay_batches")
    finally:
        await conn.close()
    out: dict[tuple[str, int], tuple[int, int | None]] = {}
    for row in rows:
        for logical, partition, lo, hi in orjson.loads(row["ranges"]):
            key = (logical, partition)
            first, last = out.get(key, (lo, hi))
            out[key] = (min(first, lo), max(last or hi, hi))
    return out


async def verify(
    args: argparse.Namespace, settings: Settings
) -> tuple[int, dict[str, Any], list[str]]:
    postgres = args.models in ("all", "postgres")
    redis = args.models in ("all", "redis")
    if args.copy == args.against:
        raise VerifyError("--copy and --against name the same copy")
    left = await load_copy(settings, args.copy, postgres=postgres, redis=redis)
    if args.against == "topics":
        right = await load_topics(settings, args.copy, args.from_spec)
    else:
        right = await load_copy(settings, args.against, postgres=postgres, redis=redis)
    result = compare(
        left, right, names=(args.copy, args.against), postgres=postgres, redis=redis,
        limit=args.limit,
    )  # fmt: skip
    return (EXIT_EQUAL if result.equal else EXIT_DIFFERENT), result.doc(), result.lines()


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    try:
        code, doc, lines = asyncio.run(verify(args, settings))
    except VerifyError as exc:
        print(f"seatflow verify: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (KafkaError, KafkaSilent) as exc:
        print(
            f"seatflow verify: Kafka at {settings.kafka_bootstrap} unreachable or failing: "
            f"{exc or type(exc).__name__}",
            file=sys.stderr,
        )
        return EXIT_KAFKA
    if args.json:
        print(orjson.dumps(doc).decode())
    else:
        print("\n".join(lines))
    return code
