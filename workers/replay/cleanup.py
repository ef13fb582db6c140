"""`seatflow replay --drop-old` and `--abort`: removing a copy that is not live.

- drop-old: the copy a swap replaced (`<schema>_old`, `<prefix>~old:`), kept until now so
  that it could be compared (`seatflow verify --against old`) or inspected.
- abort: an unfinished replay. A fenced live generation is unfenced first (its workers,
  waiting at start, go on where they stopped), then the shadow copy is dropped, and the
  aborted generation's own topics are deleted: it never became live, and its number is
  never reused (`last_target`), so nothing will read them.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import redis.asyncio as aioredis
from aiokafka.admin import AIOKafkaAdminClient

from workers.generation import (
    CONTROL_SCHEMA,
    SWAPPING,
    old_prefix,
    old_schema,
    pipeline_for,
    read_control,
    shadow_prefix,
    shadow_schema,
)
from workers.kafka_clients import client_kwargs
from workers.replay.runner import SEAT_FACTS, SEATS_CHANGELOG, ReplayRefused
from workers.replay.shadow import Shadow
from workers.replay.swap import drop_copy, unfence
from workers.settings import Settings


async def _clients(base: Settings) -> tuple[asyncpg.Pool, aioredis.Redis]:
    pool = await asyncpg.create_pool(base.postgres_dsn.get_secret_value(), min_size=1, max_size=2)
    client = aioredis.from_url(base.redis_url.get_secret_value(), decode_responses=True)
    return pool, client


async def drop_old(base: Settings) -> dict[str, Any]:
    pool, client = await _clients(base)
    try:
        async with pool.acquire() as conn:
            control = await read_control(conn, base.pg_schema, base.redis_prefix)
            if control.state == SWAPPING:
                raise ReplayRefused("a swap is in progress: finish it (seatflow replay) first")
            schema, prefix = old_schema(base.pg_schema), old_prefix(base.redis_prefix)
            existed, keys = await drop_copy(conn, client, schema, prefix)
            await conn.execute(
                f"UPDATE {CONTROL_SCHEMA}.generations SET previous = NULL "
                "WHERE read_model_schema = $1",
                base.pg_schema,
            )
    finally:
        await client.aclose()
        await pool.close()
    return {
        "dropped_schema": schema if existed else None,
        "dropped_keys": keys,
        "message": (
            f"dropped the old copy: schema {schema} ({'dropped' if existed else 'absent'}), "
            f"{keys:,} keys under {prefix}"
        ),
    }


async def abort(base: Settings) -> dict[str, Any]:
    pool, client = await _clients(base)
    try:
        shadow = Shadow(base, pool, client)
        lock = await shadow.run_lock()
        if lock is None:
            raise ReplayRefused("a replay is running: stop it before aborting it")
        try:
            run = await shadow.load_run()
            async with pool.acquire() as conn:
                control = await read_control(conn, base.pg_schema, base.redis_prefix)
                await unfence(conn, client, base, control)
                target = run.target if run is not None else control.target
                existed, keys = await drop_copy(
                    conn, client, shadow_schema(base.pg_schema), shadow_prefix(base.redis_prefix)
                )
        finally:
            await lock.close()
    finally:
        await client.aclose()
        await pool.close()
    deleted: list[str] = []
    if target is not None and target > control.generation:
        deleted = await _delete_generation_topics(base, target)
    return {
        "unfenced": control.state == SWAPPING,
        "dropped_schema": shadow_schema(base.pg_schema) if existed else None,
        "dropped_keys": keys,
        "deleted_topics": deleted,
        "message": (
            (f"unfenced generation {control.generation}; " if control.state == SWAPPING else "")
            + f"dropped the shadow copy ({keys:,} redis keys)"
            + (f"; deleted topics {', '.join(deleted)}" if deleted else "")
        ),
    }


async def _delete_generation_topics(base: Settings, target: int) -> list[str]:
    catalog = pipeline_for(base, target).catalog
    names = [catalog.get(SEAT_FACTS).name, catalog.dead_letter_for(SEAT_FACTS).name]
    names.append(catalog.get(SEATS_CHANGELOG).name)
    admin = AIOKafkaAdminClient(**client_kwargs(base))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        doomed = [n for n in names if n in existing]
        if doomed:
            await admin.delete_topics(doomed)
        return doomed
    finally:
        await admin.close()
