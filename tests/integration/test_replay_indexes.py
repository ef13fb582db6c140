"""The shadow's secondary indexes, deferred while its tables fill: dropped with their
definitions kept, built back exactly, and safe to run again at any point."""

from __future__ import annotations

import asyncpg
import pytest

from tests.integration.conftest import SettingsFactory
from workers.db.migrate import migrate_connection
from workers.generation import CONTROL_SCHEMA, SWAPPING, read_control, shadow_schema
from workers.replay import indexes
from workers.replay.swap import SwapError, swap_postgres
from workers.settings import Settings

pytestmark = pytest.mark.integration


async def index_definitions(conn: asyncpg.Connection, schema: str) -> dict[str, str]:
    """Index name -> its definition, the schema's name taken out (comparable across
    schemas)."""
    rows = await conn.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1", schema
    )
    return {r["indexname"]: r["indexdef"].replace(f"{schema}.", "") for r in rows}


async def test_deferred_indexes_are_built_back_exactly(migrated_settings: Settings) -> None:
    schema = migrated_settings.pg_schema
    conn = await asyncpg.connect(migrated_settings.postgres_dsn.get_secret_value())
    try:
        migrated = await index_definitions(conn, schema)
        secondary = sorted(name for name, d in migrated.items() if " UNIQUE " not in d)
        assert "reservations_customer_id_idx" in secondary  # what the upserts pay for
        assert len(secondary) >= 4

        assert await indexes.defer(conn, schema) == secondary
        left = await index_definitions(conn, schema)
        assert all(" UNIQUE " in d for d in left.values()), left  # keys stay: ON CONFLICT
        assert set(left) == (set(migrated) - set(secondary)) | {f"{indexes.TABLE}_pkey"}
        assert await indexes.pending(conn, schema) == secondary
        assert await indexes.defer(conn, schema) == []  # nothing more to defer
        assert await indexes.pending(conn, schema) == secondary

        # rows written meanwhile are indexed by the build
        await conn.execute(
            f'INSERT INTO "{schema}".reservations (reservation_id, seat_id, customer_id, '
            "seat_number, base_price, status, created_at, expires_at) VALUES "
            "(gen_random_uuid(), gen_random_uuid(), 'c-1', 'A-1', 5, 'active', now(), now())"
        )
        assert await indexes.build(conn, schema) == secondary
        async with conn.transaction():
            await conn.execute("SET LOCAL enable_seqscan = off")
            lookup = f"SELECT customer_id FROM \"{schema}\".reservations WHERE customer_id = 'c-1'"
            plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + lookup))
            assert "reservations_customer_id_idx" in plan, plan
            assert await conn.fetchval(lookup) == "c-1"
        built = await index_definitions(conn, schema)
        assert {k: v for k, v in built.items() if k != f"{indexes.TABLE}_pkey"} == migrated
        assert await indexes.pending(conn, schema) == []
        assert await indexes.build(conn, schema) == []
    finally:
        await conn.close()


async def test_a_build_cut_short_is_finished_by_the_next(migrated_settings: Settings) -> None:
    """Killed after one index was created but before its record was removed (the same
    transaction makes that impossible; a person creating it by hand does not): the next
    build finishes the rest and does not fail on the one that exists."""
    schema = migrated_settings.pg_schema
    conn = await asyncpg.connect(migrated_settings.postgres_dsn.get_secret_value())
    try:
        migrated = await index_definitions(conn, schema)
        deferred = await indexes.defer(conn, schema)
        definition = await conn.fetchval(
            f'SELECT definition FROM "{schema}".{indexes.TABLE} WHERE name = $1', deferred[0]
        )
        await conn.execute(definition)
        assert await indexes.build(conn, schema) == deferred
        built = await index_definitions(conn, schema)
        assert {k: v for k, v in built.items() if k != f"{indexes.TABLE}_pkey"} == migrated
    finally:
        await conn.close()


async def test_a_schema_without_the_record_table_has_nothing_pending(
    migrated_settings: Settings,
) -> None:
    conn = await asyncpg.connect(migrated_settings.postgres_dsn.get_secret_value())
    try:
        assert await indexes.pending(conn, migrated_settings.pg_schema) == []
        assert await indexes.build(conn, migrated_settings.pg_schema) == []
    finally:
        await conn.close()


async def test_the_swap_refuses_a_shadow_whose_indexes_are_not_built(
    settings_factory: SettingsFactory,
) -> None:
    """A guard (the replay builds them first): never a live copy without its indexes."""
    settings = settings_factory()
    shadow = shadow_schema(settings.pg_schema)
    conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
    try:
        await migrate_connection(conn, shadow)
        deferred = await indexes.defer(conn, shadow)
        await read_control(conn, settings.pg_schema, settings.redis_prefix)
        await conn.execute(
            f"UPDATE {CONTROL_SCHEMA}.generations SET state = $2, target = 2 "
            "WHERE read_model_schema = $1",
            settings.pg_schema, SWAPPING,
        )  # fmt: skip
        with pytest.raises(SwapError, match=f"secondary indexes {deferred[0]}, .* not built"):
            await swap_postgres(conn, settings, 1, 2)
        assert await conn.fetchval("SELECT to_regnamespace($1)", shadow) is not None

        await indexes.build(conn, shadow)
        assert await swap_postgres(conn, settings, 1, 2)
        live = await index_definitions(conn, settings.pg_schema)
        assert set(deferred) <= set(live)
        table = f'"{settings.pg_schema}".{indexes.TABLE}'
        assert await conn.fetchval("SELECT to_regclass($1)", table) is None  # bookkeeping
    finally:
        await conn.close()
