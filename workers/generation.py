"""Projection generations: which pipeline owns the live read models, and the fence.

The live worker's sink writes are *deltas* computed against its seat table (a Faust table
backed by a changelog topic), and each sink skips by its checkpoints on the worker's
seat-facts topic. A rebuilt read-model copy is therefore only correct if the worker that
continues writing it continues from a seat table that matches it exactly. So everything a
projection pipeline owns is named by a *generation* N:

- its consumer group: `{consumer_group}` for generation 1, `{consumer_group}.g{N}` after;
- its own topics: seat-facts and its dead letters (`{gen}` in topics/catalog.toml) and the
  seat table's changelog (`{group}-seats-changelog` follows the group);
- the read-model copy it writes: always the live names (schema `pg_schema`, Redis
  `redis_prefix`), because `seatflow replay` moves a finished copy under those names.

The live generation is recorded twice, once per store, because each sink fences on its own
store inside its own atomic write:

- PostgreSQL: `seatflow_control.generations`, one row per live read-model schema. A fenced
  Postgres sink reads the row `FOR SHARE` first thing in its transaction; the swap updates
  it, so the swap waits for batches in flight and every later batch sees the change.
- Redis: `{redis_prefix}checkpoint:generation` ("N" when live, "N>M" while generation M is
  being swapped in). A fenced Redis sink WATCHes it with its checkpoint, so a change
  between its read and its EXEC aborts the EXEC. The key sits under `checkpoint:` because
  readers and `RedisSink.snapshot` leave that namespace out of the read models.

A sink that finds another generation raises `GenerationChanged`; the worker then stops
without acknowledging its batch and re-executes itself (`reexec`), and at start waits until
a generation is live in both stores and runs that one's pipeline.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, NoReturn

import asyncpg
import redis.asyncio as aioredis

from workers.db.migrate import quote_ident
from workers.settings import Settings
from workers.topic_catalog import TopicCatalog, generation_suffix, load_catalog

CONTROL_SCHEMA = "seatflow_control"
LIVE = "live"
SWAPPING = "swapping"
_CONTROL_LOCK = (0x5EA7F12, 0)
"""Advisory lock (class, key) serialising the creation of the control schema."""

CONTROL_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {CONTROL_SCHEMA};
CREATE TABLE IF NOT EXISTS {CONTROL_SCHEMA}.generations (
    read_model_schema text        PRIMARY KEY,
    generation        integer     NOT NULL CHECK (generation >= 1),
    state             text        NOT NULL DEFAULT '{LIVE}'
                                  CHECK (state IN ('{LIVE}', '{SWAPPING}')),
    target            integer,
    redis_prefix      text        NOT NULL,
    swapped_at        timestamptz,
    previous          integer,
    last_target       integer
);
ALTER TABLE {CONTROL_SCHEMA}.generations ADD COLUMN IF NOT EXISTS last_target integer;
COMMENT ON TABLE {CONTROL_SCHEMA}.generations IS
    'seatflow: the projection generation that owns each live read-model schema '
    '(workers/generation.py); target = generation being swapped in while swapping; '
    'previous = generation of the copy kept as <schema>_old; last_target = highest '
    'generation a replay was started for (never reused: its topics may hold data)';
"""


class GenerationChanged(Exception):
    """The sink's generation is no longer the live one: stop writing, re-exec the worker.

    Not a dependency failure (nothing to retry) and not a defect (nothing to stop for):
    the worker restarts itself on the generation now live."""


# ---------------------------------------------------------------- names


def group_for(base_group: str, generation: int) -> str:
    return base_group + generation_suffix(generation)


def shadow_schema(schema: str) -> str:
    """Where `seatflow replay` builds the next copy of the PostgreSQL read models."""
    return f"{schema}_shadow"


def old_schema(schema: str) -> str:
    """Where the previous copy stays after a swap, until `seatflow replay --drop-old`."""
    return f"{schema}_old"


def _sibling_prefix(prefix: str, what: str) -> str:
    # Beside the live prefix, not under it: "sf:" -> "sf~shadow:". A key under the live
    # prefix would be part of the live keyspace (SCANs, snapshots) of every reader.
    return f"{prefix.rstrip(':')}~{what}:"


def shadow_prefix(prefix: str) -> str:
    return _sibling_prefix(prefix, "shadow")


def old_prefix(prefix: str) -> str:
    return _sibling_prefix(prefix, "old")


def redis_generation_key(prefix: str) -> str:
    return f"{prefix}checkpoint:generation"


def redis_value(generation: int, target: int | None = None) -> str:
    """The Redis fence value: "N" when N is live, "N>M" while M is being swapped in."""
    return str(generation) if target is None else f"{generation}>{target}"


@dataclass(frozen=True, slots=True)
class Pipeline:
    """One generation's names: settings whose consumer group is the generation's, and the
    catalog resolved for it."""

    generation: int
    settings: Settings
    catalog: TopicCatalog


def pipeline_for(base: Settings, generation: int) -> Pipeline:
    """`base` are the configured settings (the generation-1 group)."""
    settings = base.model_copy(
        update={"consumer_group": group_for(base.consumer_group, generation)}
    )
    return Pipeline(generation, settings, load_catalog(base, generation=generation))


# ---------------------------------------------------------------- the control row


@dataclass(frozen=True, slots=True)
class ControlRow:
    generation: int
    state: str
    target: int | None
    previous: int | None
    last_target: int | None

    @property
    def live(self) -> bool:
        return self.state == LIVE


async def ensure_control(conn: asyncpg.Connection) -> None:
    """Create the control schema and table if missing (concurrent callers queue up)."""
    current = await conn.fetchval(
        "SELECT true FROM information_schema.columns WHERE table_schema = $1 "
        "AND table_name = 'generations' AND column_name = 'last_target'",
        CONTROL_SCHEMA,
    )
    if current:
        return
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", *_CONTROL_LOCK)
        await conn.execute(CONTROL_DDL)


async def read_control(conn: asyncpg.Connection, schema: str, redis_prefix: str) -> ControlRow:
    """The control row of `schema`, created as generation 1 (live) when missing."""
    await ensure_control(conn)
    await conn.execute(
        f"INSERT INTO {CONTROL_SCHEMA}.generations (read_model_schema, generation, "
        "redis_prefix) VALUES ($1, 1, $2) ON CONFLICT (read_model_schema) DO NOTHING",
        schema,
        redis_prefix,
    )
    row = await conn.fetchrow(
        f"SELECT generation, state, target, previous, last_target "
        f"FROM {CONTROL_SCHEMA}.generations WHERE read_model_schema = $1",
        schema,
    )
    assert row is not None
    return ControlRow(
        row["generation"], row["state"], row["target"], row["previous"], row["last_target"]
    )


async def check_postgres_generation(conn: asyncpg.Connection, schema: str, generation: int) -> None:
    """The Postgres sink's fence: first statement of its transaction.

    FOR SHARE: sinks of one generation do not block each other, but the swap's UPDATE
    waits for their transactions, and a transaction that starts after it waits for the
    swap and then reads the new row (READ COMMITTED re-reads a locked row's last version).
    """
    row = await conn.fetchrow(
        f"SELECT generation, state FROM {CONTROL_SCHEMA}.generations "
        "WHERE read_model_schema = $1 FOR SHARE",
        schema,
    )
    if row is None or row["generation"] != generation or row["state"] != LIVE:
        found = "no control row" if row is None else f"{row['generation']} ({row['state']})"
        raise GenerationChanged(
            f"postgres schema {schema}: generation {generation} is no longer live: {found}"
        )


def check_redis_generation(value: Any, generation: int, prefix: str) -> None:
    """The Redis sink's fence, on the value of `redis_generation_key` read under WATCH."""
    text = value.decode() if isinstance(value, bytes) else value
    if text != str(generation):
        raise GenerationChanged(
            f"redis prefix {prefix}: generation {generation} is no longer live: {text!r}"
        )


# ---------------------------------------------------------------- the worker's side


async def live_generation(
    settings: Settings, log: logging.Logger, *, poll_s: float = 0.5, report_s: float = 30.0
) -> int:
    """The generation the worker must run: waits while a swap is in progress.

    Creates the control row (generation 1) and the Redis fence key on first use. Waits
    while the stores disagree, which only happens between the two halves of a swap (or
    after a replay died while fenced: rerun it, or `seatflow replay --abort`).
    """
    conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
    client = aioredis.from_url(settings.redis_url.get_secret_value(), decode_responses=True)
    key = redis_generation_key(settings.redis_prefix)
    reported = 0.0
    try:
        while True:
            row = await read_control(conn, settings.pg_schema, settings.redis_prefix)
            await client.set(key, redis_value(row.generation, row.target), nx=True)
            value = await client.get(key)
            if row.live and value == redis_value(row.generation):
                return row.generation
            if time.monotonic() - reported > report_s:
                reported = time.monotonic()
                log.warning(
                    "waiting for a generation swap to finish (postgres: generation %d %s, "
                    "redis: %r); if no `seatflow replay` is running, rerun it to finish "
                    "or run `seatflow replay --abort`",
                    row.generation, row.state, value,
                )  # fmt: skip
            await asyncio.sleep(poll_s)
    finally:
        await conn.close()
        await client.aclose()


def reexec(log: logging.Logger, reason: str) -> NoReturn:
    """Replace this process by a fresh run of the same command line.

    Nothing of the batch in hand was acknowledged, so the next generation (or this one,
    after an aborted swap) reads it again from its own committed offsets. Same pid, so a
    supervisor (or a test) sees one process throughout.
    """
    log.warning("%s; restarting this worker on the live generation", reason)
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, sys.orig_argv)


def install_watch(app: Any, settings: Settings, generation: int, log: logging.Logger) -> None:
    """A Faust timer that re-execs an idle worker whose generation is fenced or replaced.

    A busy worker meets the fence in its sinks at its next batch; an idle one would keep
    its old pipeline (and its old consumer group) until then.
    """
    key = redis_generation_key(settings.redis_prefix)
    clients: list[aioredis.Redis] = []

    async def watch_generation() -> None:
        if not clients:
            clients.append(
                aioredis.from_url(settings.redis_url.get_secret_value(), decode_responses=True)
            )
        try:
            value = await clients[0].get(key)
        except Exception:  # an outage: the sinks' retries report it; look again later
            return
        if value is not None and value != redis_value(generation):
            reexec(log, f"generation {generation} is no longer live (redis: {value!r})")

    app.timer(1.0, name="seatflow.watch-generation")(watch_generation)


# ---------------------------------------------------------------- small helpers


async def schema_exists(conn: asyncpg.Connection, schema: str) -> bool:
    return bool(await conn.fetchval("SELECT true FROM pg_namespace WHERE nspname = $1", schema))


def qualified(schema: str, table: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(table)}"
