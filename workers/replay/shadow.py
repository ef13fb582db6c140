"""The shadow copy a replay builds: its schema and prefix, sinks, bookkeeping, changelog.

Bookkeeping lives in the shadow schema itself, so it disappears with it:

- `replay_run` (one row): the target generation, the options and the offsets the run
  resolved at its start (a resumed run reads exactly what the first one planned);
- `replay_batches`: batch number -> the source ranges it covers, written BEFORE the batch
  is processed, so that a batch processed again after a crash holds the same records in
  the same order and gives its facts the same positions;
- the shadow sinks' own checkpoints, under the virtual topic `replay.g<N>` (partition 0,
  offset = batch number): how far each store has applied, the resume point. They stay in
  the copy after the swap, as a record of how it was built.

The generation's seat table is the changelog topic the replay writes (key: seat id, value:
`encode_state`, partition: the seat's seat-facts partition): the new generation's Faust
workers recover their table from it after the swap, and a resumed replay reads it back.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

import asyncpg
import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from workers.db.migrate import migrate_connection, quote_ident
from workers.generation import shadow_prefix, shadow_schema
from workers.kafka_clients import client_kwargs, send_as_batches
from workers.projection.batches import decode_state, partition_for_seat
from workers.projection.model import Mutations
from workers.projection.seat import SeatState
from workers.replay import indexes
from workers.replay.plan import SourcePartition
from workers.settings import Settings
from workers.sinks.base import ApplyResult, PositionedMutations, Sink, merged, pending
from workers.sinks.postgres_sink import PostgresSink
from workers.sinks.redis_sink import WRITE_SCRIPT, RedisSink, write_payload

POSTGRES, REDIS = "postgres", "redis"
MODELS = {"all": (POSTGRES, REDIS), POSTGRES: (POSTGRES,), REDIS: (REDIS,)}
_RUN_LOCK_CLASS = 0x5EA7F13


def checkpoint_topic(target: int) -> str:
    """The virtual topic under which the shadow sinks record applied batches."""
    return f"replay.g{target}"


@dataclass(frozen=True, slots=True)
class RunRecord:
    target: int
    source_generation: int
    options: dict[str, Any]
    """`from`, `to` (as given) and `models`: a rerun must ask for the same."""
    starts: dict[str, int]
    """Source partition label -> first offset."""
    ends: dict[str, int] | None
    """Fixed end offsets (`--to`); None: the end offsets at the time, then catch-up."""


def _ddl(s: str) -> str:
    return f"""
        CREATE SCHEMA IF NOT EXISTS {s};
        CREATE TABLE IF NOT EXISTS {s}.replay_run (
            singleton         boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
            target            integer     NOT NULL,
            source_generation integer     NOT NULL,
            options           jsonb       NOT NULL,
            starts            jsonb       NOT NULL,
            ends              jsonb,
            created_at        timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE IF NOT EXISTS {s}.replay_batches (
            batch_no    integer     PRIMARY KEY,
            ranges      jsonb       NOT NULL,
            recorded_at timestamptz NOT NULL DEFAULT now()
        );
    """


Ranges = dict[SourcePartition, tuple[int, int]]


class Shadow:
    """The shadow copy of one live read-model schema and prefix."""

    def __init__(self, settings: Settings, pool: asyncpg.Pool, client: aioredis.Redis) -> None:
        self.settings = settings
        self.pool = pool
        self.client = client
        self.schema = shadow_schema(settings.pg_schema)
        self.prefix = shadow_prefix(settings.redis_prefix)
        self._s = quote_ident(self.schema)
        self.sinks: list[Sink] = []

    # ------------------------------------------------------------ bookkeeping
    async def load_run(self) -> RunRecord | None:
        exists = await self.pool.fetchval("SELECT to_regclass($1)", f"{self._s}.replay_run")
        if exists is None:
            return None
        row = await self.pool.fetchrow(
            f"SELECT target, source_generation, options, starts, ends FROM {self._s}.replay_run"
        )
        if row is None:
            return None
        ends = row["ends"]
        return RunRecord(
            row["target"], row["source_generation"], orjson.loads(row["options"]),
            orjson.loads(row["starts"]), orjson.loads(ends) if ends is not None else None,
        )  # fmt: skip

    async def create(self, run: RunRecord, models: Sequence[str]) -> None:
        """The schema, the read-model tables (if PostgreSQL is rebuilt; their secondary
        indexes deferred: `indexes.py`) and the run row."""
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                await conn.execute(_ddl(self._s))
            if POSTGRES in models:
                await migrate_connection(conn, self.schema)
                await indexes.defer(conn, self.schema)  # built once the tables are filled
            await conn.execute(
                f"INSERT INTO {self._s}.replay_run (target, source_generation, options, "
                "starts, ends) VALUES ($1, $2, $3::jsonb, $4::jsonb, $5::jsonb) "
                "ON CONFLICT (singleton) DO NOTHING",
                run.target, run.source_generation, orjson.dumps(run.options).decode(),
                orjson.dumps(run.starts).decode(),
                orjson.dumps(run.ends).decode() if run.ends is not None else None,
            )  # fmt: skip

    async def indexes_pending(self) -> list[str]:
        """The secondary indexes `create` deferred that are not built yet."""
        async with self.pool.acquire() as conn:
            return await indexes.pending(conn, self.schema)

    async def build_indexes(self) -> list[str]:
        """The secondary indexes `create` deferred, built (none: nothing was missing)."""
        async with self.pool.acquire() as conn:
            return await indexes.build(conn, self.schema)

    async def record_batch(self, batch_no: int, ranges: Ranges) -> None:
        doc = [[sp.logical, sp.partition, lo, hi] for sp, (lo, hi) in sorted(ranges.items())]
        await self.pool.execute(
            f"INSERT INTO {self._s}.replay_batches (batch_no, ranges) VALUES ($1, $2::jsonb)",
            batch_no,
            orjson.dumps(doc).decode(),
        )

    async def recorded_batches(
        self, partitions: Mapping[tuple[str, int], SourcePartition]
    ) -> dict[int, Ranges]:
        rows = await self.pool.fetch(
            f"SELECT batch_no, ranges FROM {self._s}.replay_batches ORDER BY batch_no"
        )
        out: dict[int, Ranges] = {}
        for row in rows:
            out[row["batch_no"]] = {
                partitions[(logical, p)]: (lo, hi)
                for logical, p, lo, hi in orjson.loads(row["ranges"])
            }
        return out

    # ------------------------------------------------------------ sinks
    def open_sinks(self, models: Sequence[str]) -> None:
        self.sinks = []
        if POSTGRES in models:
            # One writer (the replay, under its run lock): no orders' advisory locks, which
            # a batch of 250,000 events would take by the tens of thousands; rows by COPY.
            self.sinks.append(PostgresSink(self.pool, self.schema, lock_orders=False, staged=True))
        if REDIS in models:
            self.sinks.append(ShadowRedisSink(self.client, self.prefix))

    async def next_batch(self, target: int) -> int:
        """The first batch some shadow sink has not applied."""
        topic = checkpoint_topic(target)
        positions = [await sink.positions(topic) for sink in self.sinks]
        return min(p.get(0, 0) for p in positions)

    async def apply(self, target: int, batch_no: int, mutations: Mutations) -> dict[str, float]:
        """Both stores at once, each exactly once with its checkpoint (PostgreSQL in one
        transaction; Redis: see `ShadowRedisSink`); returns the seconds each store took
        (the benchmark's phases)."""
        batch = [PositionedMutations(0, batch_no, mutations)]
        topic = checkpoint_topic(target)

        async def timed(sink: Sink) -> tuple[str, float]:
            started = time.perf_counter()
            await sink.apply(topic, batch)
            return sink.name, time.perf_counter() - started

        return dict(await asyncio.gather(*(timed(sink) for sink in self.sinks)))

    async def run_lock(self) -> asyncpg.Connection | None:
        """A connection holding the session lock "a replay of this schema runs", or None
        if another process holds it."""
        conn: asyncpg.Connection = await asyncpg.connect(
            self.settings.postgres_dsn.get_secret_value()
        )
        got = await conn.fetchval(
            "SELECT pg_try_advisory_lock($1, hashtext($2))", _RUN_LOCK_CLASS,
            self.settings.pg_schema,
        )  # fmt: skip
        if not got:
            await conn.close()
            return None
        return conn


REDIS_CHUNK = 5_000
"""Seat hashes or seat-map fields per script in a shadow batch's first part: one script
holds Redis for tens of milliseconds, not for seconds."""


def absolute_parts(m: Mutations, size: int = REDIS_CHUNK) -> Iterator[Mutations]:
    """The Redis writes of `m` that set values (seat hashes, seat-map fields set or
    removed), in pieces of at most `size` keys or fields: writing one twice changes
    nothing. The counters (`availability`, `availability_fields`) are not in them.

    Pieces follow the mutations' own (deterministic) order, unsorted: each piece's
    payload is sorted by `write_payload`, and which piece writes a value does not change
    what Redis ends with."""
    for attribute in ("seats", "seatmap_set"):
        values: dict[Any, Any] = getattr(m, attribute)
        items = iter(values.items())
        for _ in range(0, len(values), size):
            yield Mutations(**{attribute: dict(islice(items, size))})
    gone = iter(m.seatmap_del)
    for _ in range(0, len(m.seatmap_del), size):
        yield Mutations(seatmap_del=set(islice(gone, size)))


class ShadowRedisSink(RedisSink):
    """`RedisSink` for the shadow copy: a batch's values first, in small scripts; its
    counters with the checkpoint, atomically.

    The live sink writes a batch in one MULTI/EXEC. A replay batch holds up to hundreds
    of thousands of seat hashes, and one script writing them all would hold Redis, which
    the live workers and readers share, for seconds. Only the counter deltas must be
    written exactly once, i.e. together with the checkpoint; seat hashes (replaced whole)
    and seat-map fields are values, and writing one again writes the same thing. So
    they go first, `REDIS_CHUNK` at a time (two in flight), then the availability deltas and the new
    checkpoint in one MULTI/EXEC. Killed in between, the shadow holds some of the batch's
    values but not its counters nor its checkpoint: the resumed run processes the batch
    again (same mutations: fold.py), writes the same values and then the counters once.
    Nobody reads the shadow before the swap, which needs every batch applied.

    Exactly one process writes the shadow (the replay, under its run lock), so a moved
    checkpoint is an error here, not a race to retry.
    """

    piece_size = REDIS_CHUNK
    """Keys or fields per value script (`absolute_parts`)."""

    async def apply(self, topic: str, batch: Sequence[PositionedMutations]) -> ApplyResult:
        if not batch:
            return ApplyResult(applied=0, skipped=0)
        key = self.checkpoint_key(topic)
        current = await self.positions(topic)
        todo, advanced = pending(batch, current)
        if not todo:
            return ApplyResult(applied=0, skipped=len(batch))
        m = merged(todo)
        await self._write_values(m)
        counters = Mutations(availability=m.availability, availability_fields=m.availability_fields)
        async with self.client.pipeline(transaction=True) as pipe:
            await pipe.watch(key)
            if await self.positions(topic) != current:
                raise RuntimeError(f"{key} moved: another process writes the shadow copy")
            pipe.multi()
            self._queue_writes(pipe, counters)
            pipe.hset(key, mapping={str(p): str(o) for p, o in sorted(advanced.items())})
            await pipe.execute()  # WatchError if the checkpoint moved meanwhile
        return ApplyResult(applied=len(todo), skipped=len(batch) - len(todo))

    async def _write_values(self, m: Mutations) -> None:
        """The batch's values, piece by piece, `VALUES_IN_FLIGHT` scripts at a time: the
        next pieces' payloads are built here while Redis runs the earlier ones (the
        pieces commute: each key or field is in one of them). A piece that fails fails
        the batch once the others in flight have ended (they are values: written or
        not, the batch is applied again in full): nothing is left running behind it.
        Cancelled, it cancels them."""
        in_flight: deque[asyncio.Task[Any]] = deque()
        try:
            for part in absolute_parts(m, self.piece_size):
                payload = write_payload(self.prefix, part)
                if len(in_flight) >= VALUES_IN_FLIGHT:
                    await in_flight[0]
                    in_flight.popleft()
                in_flight.append(asyncio.ensure_future(self.client.eval(WRITE_SCRIPT, 0, payload)))
                # Let it start: its command is written by the time the piece before it
                # has been awaited, i.e. before the payload after next is built.
                await asyncio.sleep(0)
            while in_flight:
                await in_flight[0]
                in_flight.popleft()
        except asyncio.CancelledError:
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)
            raise
        except Exception:
            await asyncio.gather(*in_flight, return_exceptions=True)
            raise


VALUES_IN_FLIGHT = 2
"""Value scripts of a shadow batch sent before the first of them must have returned."""


# ---------------------------------------------------------------- the generation's seat table


class ChangelogWriter:
    """Writes seat states to a changelog topic and waits until Kafka has them all."""

    def __init__(self, settings: Settings, topic: str, partitions: int) -> None:
        self.topic = topic
        self.partitions = partitions
        self._partition_of: dict[str, int] = {}
        """Seat -> changelog partition: a seat is saved many times, murmur2 once."""
        self.producer = AIOKafkaProducer(
            **client_kwargs(settings), acks="all", linger_ms=5,
            max_batch_size=1024 * 1024, max_request_size=8 * 1024 * 1024,
        )  # fmt: skip

    async def start(self) -> None:
        await self.producer.start()

    async def stop(self) -> None:
        await self.producer.stop()

    async def save(self, states: Iterable[tuple[str, bytes]]) -> None:
        """Send every (seat id, encoded state); return once all are acknowledged."""
        await asyncio.gather(*await self.send(states))

    async def send(self, states: Iterable[tuple[str, bytes]]) -> list[asyncio.Future[Any]]:
        """Queue every (seat id, encoded state) for sending, in call order per partition
        (so a later call's state of a seat lands after an earlier one's); returns the
        futures of their acknowledgements."""
        by_partition: dict[int, list[tuple[bytes, bytes]]] = {}
        partition_of = self._partition_of
        for seat_id, value in states:
            partition = partition_of.get(seat_id)
            if partition is None:
                partition = partition_of[seat_id] = partition_for_seat(seat_id, self.partitions)
            by_partition.setdefault(partition, []).append((seat_id.encode(), value))
        futures = []
        for partition, items in sorted(by_partition.items()):
            sent = await send_as_batches(self.producer, self.topic, partition, items)
            futures += [future for future, _ in sent]
        return futures


async def read_changelog(settings: Settings, topic: str, partitions: int) -> dict[str, SeatState]:
    """The latest state of every seat in the changelog (it is compacted: last value wins)."""
    consumer = AIOKafkaConsumer(
        **client_kwargs(settings), enable_auto_commit=False,
        fetch_max_bytes=64 * 1024 * 1024, max_partition_fetch_bytes=16 * 1024 * 1024,
    )  # fmt: skip
    await consumer.start()
    latest: dict[bytes, bytes | None] = {}
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        active = {tp for tp in tps if ends[tp] > 0}
        while active:
            fetched = await consumer.getmany(*active, timeout_ms=500)
            for records in fetched.values():
                for record in records:
                    latest[record.key] = record.value
            for tp in list(active):
                if await consumer.position(tp) >= ends[tp]:
                    active.discard(tp)
    finally:
        await consumer.stop()
    return {
        key.decode(): decode_state(key.decode(), value)
        for key, value in latest.items()
        if value is not None
    }
