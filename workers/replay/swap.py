"""Handing the read models over from generation N to the replay's generation M.

1. `fence`: the control row goes to `swapping` (target M) and the Redis fence key to
   "N>M". The first waits for the generation-N Postgres batches in flight (they hold the
   row FOR SHARE) and the second aborts any Redis EXEC that WATCHes the key: from then on
   no generation-N sink writes, so the live copy is frozen, complete as of its last batch,
   and the live Redis keyspace cannot change under the swap's SCAN.
2. (runner.py) a final catch-up to the end offsets S seen after the fence.
3. `commit_offsets`: generation M's consumer group starts at S on every source partition.
4. `swap_postgres`: one transaction locks every table of both schemas (readers wait a
   moment instead of resolving one table in each copy), renames live -> `_old` and shadow
   -> live, and makes M the live generation.
5. `swap_redis`: one Lua script (atomic, like MULTI/EXEC, but one round trip for any
   number of keys) renames every live key to the old prefix, every shadow key to the live
   prefix, and sets the fence key to "M".

Readers therefore see, per store, the old complete model or the new complete model. The
generation-N workers meet the fence, re-exec, wait for both stores to say M, and continue
as generation M from S with the seat table the replay wrote. A run that dies anywhere in
here is finished by running `seatflow replay` again (every step checks whether it is done).
"""

from __future__ import annotations

from collections.abc import Mapping

import asyncpg
import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition

from workers.db.migrate import quote_ident
from workers.generation import (
    CONTROL_SCHEMA,
    LIVE,
    SWAPPING,
    ControlRow,
    old_prefix,
    old_schema,
    redis_generation_key,
    redis_value,
    schema_exists,
    shadow_prefix,
    shadow_schema,
)
from workers.kafka_clients import client_kwargs
from workers.replay import indexes
from workers.settings import Settings

FAMILIES = ("seat:", "seatmap:", "availability:", "checkpoint:seats:")
"""The key families of a read-model copy (the fence key is not one: it stays put)."""
SCAN_COUNT = 2000
LOCK_TIMEOUT = "30s"


class SwapError(RuntimeError):
    """The stores are not in the state a step expects; the message says what to do."""


def glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


async def copy_keys(
    client: aioredis.Redis, prefix: str, families: tuple[str, ...] = FAMILIES
) -> list[str]:
    """Every key of a copy under `prefix` (sorted, so scripts see a stable order).

    One SCAN of the prefix, filtered here: SCAN walks the whole keyspace whatever its
    pattern, so one pass per family would cost one walk each."""
    keys: set[str] = set()
    starts = tuple(prefix + family for family in families)
    async for key in client.scan_iter(match=glob_escape(prefix) + "*", count=SCAN_COUNT):
        text = key.decode() if isinstance(key, bytes) else key
        if text.startswith(starts):
            keys.add(text)
    return sorted(keys)


# ---------------------------------------------------------------- 1. fence


async def fence(
    conn: asyncpg.Connection, client: aioredis.Redis, settings: Settings, source: int, target: int
) -> None:
    """Stop generation `source` writing; idempotent (a rerun after a crash fences again)."""
    updated = await conn.fetchval(
        f"UPDATE {CONTROL_SCHEMA}.generations SET state = $3, target = $4 "
        "WHERE read_model_schema = $1 AND generation = $2 "
        "  AND (state = $5 OR (state = $3 AND target = $4)) RETURNING generation",
        settings.pg_schema, source, SWAPPING, target, LIVE,
    )  # fmt: skip
    if updated is None:
        raise SwapError(f"cannot fence generation {source} of {settings.pg_schema}: not live")
    key = redis_generation_key(settings.redis_prefix)
    ok = await client.eval(_SET_IF_SCRIPT, 1, key, redis_value(source), redis_value(source, target))
    if not ok:
        current = await client.get(key)
        raise SwapError(
            f"cannot fence redis prefix {settings.redis_prefix}: generation {current!r}"
        )


_SET_IF_SCRIPT = """
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] or v == ARGV[2] or v == false then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
"""Set the fence key to ARGV[2] if it says ARGV[1] (or already ARGV[2], or nothing)."""


async def unfence(
    conn: asyncpg.Connection, client: aioredis.Redis, settings: Settings, row: ControlRow
) -> None:
    """Undo `fence` (abort): generation `row.generation` is live again in both stores."""
    if row.state == SWAPPING:
        await conn.execute(
            f"UPDATE {CONTROL_SCHEMA}.generations SET state = $2, target = NULL "
            "WHERE read_model_schema = $1",
            settings.pg_schema, LIVE,
        )  # fmt: skip
        await client.eval(
            _SET_IF_SCRIPT, 1, redis_generation_key(settings.redis_prefix),
            redis_value(row.generation, row.target), redis_value(row.generation),
        )  # fmt: skip


# ---------------------------------------------------------------- 3. offsets


async def commit_offsets(
    settings: Settings, group: str, offsets: Mapping[TopicPartition, int]
) -> None:
    """Commit `offsets` for `group` without joining it (it has no members yet: its
    workers wait for the swap), so that its Faust workers start exactly there."""
    consumer = AIOKafkaConsumer(**client_kwargs(settings), group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit(dict(offsets))
    finally:
        await consumer.stop()


# ---------------------------------------------------------------- 4. PostgreSQL


async def swap_postgres(
    conn: asyncpg.Connection, settings: Settings, source: int, target: int
) -> bool:
    """Rename shadow -> live, live -> old, and record `target` as live, atomically.

    Returns False when it was already done (a rerun after a crash between the stores).
    """
    live, shadow, old = (
        settings.pg_schema,
        shadow_schema(settings.pg_schema),
        old_schema(settings.pg_schema),
    )
    async with conn.transaction():
        await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        row = await conn.fetchrow(
            f"SELECT generation, state, target FROM {CONTROL_SCHEMA}.generations "
            "WHERE read_model_schema = $1 FOR UPDATE",
            live,
        )
        if row is not None and row["generation"] == target and row["state"] == LIVE:
            return False
        if row is None or (row["generation"], row["state"], row["target"]) != (
            source,
            SWAPPING,
            target,
        ):
            raise SwapError(
                f"schema {live}: expected generation {source} swapping to {target}, "
                f"found {dict(row or {})}"
            )
        if await schema_exists(conn, old):
            raise SwapError(f"schema {old} exists: drop it first (seatflow replay --drop-old)")
        missing = await indexes.pending(conn, shadow)
        if missing:  # the replay builds them first: this is a guard, not a step
            raise SwapError(
                f"schema {shadow}: its secondary indexes {', '.join(missing)} are not built "
                "yet (run the same replay again: it builds them before swapping)"
            )
        tables = await conn.fetch(
            "SELECT schemaname, tablename FROM pg_tables WHERE schemaname = ANY($1::text[]) "
            "ORDER BY schemaname, tablename",
            [live, shadow],
        )
        if tables:
            names = ", ".join(
                f"{quote_ident(t['schemaname'])}.{quote_ident(t['tablename'])}" for t in tables
            )
            await conn.execute(f"LOCK TABLE {names} IN ACCESS EXCLUSIVE MODE")
        if await schema_exists(conn, live):
            await conn.execute(f"ALTER SCHEMA {quote_ident(live)} RENAME TO {quote_ident(old)}")
        await conn.execute(f"ALTER SCHEMA {quote_ident(shadow)} RENAME TO {quote_ident(live)}")
        q = quote_ident(live)
        await conn.execute(
            f"DROP TABLE IF EXISTS {q}.replay_run, {q}.replay_batches, {q}.{indexes.TABLE}"
        )
        await conn.execute(
            f"UPDATE {CONTROL_SCHEMA}.generations SET generation = $2, state = $3, target = NULL, "
            "swapped_at = now(), previous = $4 WHERE read_model_schema = $1",
            live, target, LIVE, source,
        )  # fmt: skip
    return True


# ---------------------------------------------------------------- 5. Redis

_SWAP_SCRIPT = """
local fence, expected, final = ARGV[1], ARGV[2], ARGV[3]
local moves = cjson.decode(ARGV[4])
local v = redis.call('GET', fence)
if v == final then return 0 end
if v ~= expected then
  return redis.error_reply('fence is ' .. tostring(v) .. ', not ' .. expected)
end
local leaving = {}
for _, m in ipairs(moves) do leaving[m[1]] = true end
for _, m in ipairs(moves) do
  if redis.call('EXISTS', m[1]) == 0 then return redis.error_reply('missing key ' .. m[1]) end
  if redis.call('EXISTS', m[2]) == 1 and not leaving[m[2]] then
    return redis.error_reply('key exists ' .. m[2])
  end
end
for _, m in ipairs(moves) do redis.call('RENAME', m[1], m[2]) end
redis.call('SET', fence, final)
return #moves
"""
"""Checks everything before the first write (a script's writes are not rolled back on a
later error), then renames and sets the fence key: all or nothing. The live keys move
first, so a shadow key may land on a name a live key is leaving."""


async def swap_redis(client: aioredis.Redis, settings: Settings, source: int, target: int) -> int:
    """Move live keys to the old prefix and shadow keys to the live prefix, atomically.

    The key lists come from SCANs before the script: the fence guarantees nobody writes
    the live keys meanwhile, and only this process writes the shadow. Returns the number
    of keys moved (0: already done).
    """
    live, shadow, old = (
        settings.redis_prefix,
        shadow_prefix(settings.redis_prefix),
        old_prefix(settings.redis_prefix),
    )
    fence_key = redis_generation_key(live)
    if await client.get(fence_key) == redis_value(target):
        return 0
    moves = [[k, old + k[len(live) :]] for k in await copy_keys(client, live)]
    moves += [[k, live + k[len(shadow) :]] for k in await copy_keys(client, shadow)]
    result = await client.eval(
        _SWAP_SCRIPT, 0, fence_key, redis_value(source, target), redis_value(target),
        orjson.dumps(moves),
    )  # fmt: skip
    return int(result)


# ---------------------------------------------------------------- cleanup


async def drop_copy(
    conn: asyncpg.Connection, client: aioredis.Redis, schema: str, prefix: str
) -> tuple[bool, int]:
    """Drop a schema and every key of a copy under a prefix; returns (schema existed, keys)."""
    existed = await schema_exists(conn, schema)
    await conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(schema)} CASCADE")
    keys = await copy_keys(client, prefix, FAMILIES)
    for start in range(0, len(keys), 1000):
        await client.unlink(*keys[start : start + 1000])
    return existed, len(keys)


async def old_copy_exists(
    conn: asyncpg.Connection, client: aioredis.Redis, settings: Settings
) -> bool:
    if await schema_exists(conn, old_schema(settings.pg_schema)):
        return True
    pattern = glob_escape(old_prefix(settings.redis_prefix)) + "*"
    async for _ in client.scan_iter(match=pattern, count=SCAN_COUNT):
        return True
    return False
