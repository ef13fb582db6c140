"""The shadow's secondary indexes: built once its tables are filled, not row by row.

Why: a replay inserts and updates every row of the read model, and a b-tree index kept
up to date row by row costs far more than one built from the finished table in a single
sort. `bench/indexes.py` (four batches of 123,000 reservations, a third of them updates
of earlier rows, staged and upserted as the shadow sink does): 6.1 s with the table's two
secondary indexes kept up to date, 3.2 s without them, building them afterwards included.

Which: every index of the shadow schema that is not unique and belongs to no constraint
or partitioned index (those cannot be dropped on their own). Primary keys and unique
indexes stay, because upserts (`ON CONFLICT`) and correctness need them; the others
only serve the query side, which reads the shadow only once it is swapped in.

How it stays safe: `defer` records each definition in `replay_deferred_indexes` in the
transaction that drops the index, and `build` creates each in the transaction that
deletes its record, so a replay killed at any point builds exactly the missing ones on
its next run. When the replay is about to fence the live copy, it first waits until
every batch read so far is written, builds them, and measures the lag again (it may have
grown meanwhile): only the short catch-up writes with them, and the freeze never waits for
the build. A replay that does not swap builds them once its last batch is written. The
swap refuses a shadow with indexes still pending (`swap.swap_postgres`).
"""

from __future__ import annotations

import asyncpg

from workers.db.migrate import quote_ident

TABLE = "replay_deferred_indexes"


async def defer(conn: asyncpg.Connection, schema: str) -> list[str]:
    """Drop the non-unique indexes of `schema`, their definitions kept; return their names
    (sorted). Running it again defers only what was built since."""
    s = quote_ident(schema)
    async with conn.transaction():
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {s}.{TABLE} ("
            "name text PRIMARY KEY, definition text NOT NULL)"
        )
        rows = await conn.fetch(
            """
            SELECT c.relname AS name, pg_get_indexdef(i.indexrelid) AS definition
            FROM pg_index i
            JOIN pg_class c ON c.oid = i.indexrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = $1 AND NOT i.indisunique AND NOT i.indisprimary
              AND c.relkind = 'i'  -- not the index of a partitioned table
              AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
              AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid)
            ORDER BY c.relname""",
            schema,
        )
        for row in rows:
            await conn.execute(
                f"INSERT INTO {s}.{TABLE} (name, definition) VALUES ($1, $2) "
                "ON CONFLICT (name) DO UPDATE SET definition = excluded.definition",
                row["name"], row["definition"],
            )  # fmt: skip
            await conn.execute(f"DROP INDEX {s}.{quote_ident(row['name'])}")
    return [row["name"] for row in rows]


async def pending(conn: asyncpg.Connection, schema: str) -> list[str]:
    """The names of the indexes `defer` dropped that are not built yet."""
    if await conn.fetchval("SELECT to_regclass($1)", f"{quote_ident(schema)}.{TABLE}") is None:
        return []
    rows = await conn.fetch(f"SELECT name FROM {quote_ident(schema)}.{TABLE} ORDER BY name")
    return [row["name"] for row in rows]


async def build(conn: asyncpg.Connection, schema: str) -> list[str]:
    """Create the deferred indexes of `schema`, each in the transaction that forgets its
    record; return their names (empty: none were missing)."""
    s = quote_ident(schema)
    built = []
    for name in await pending(conn, schema):
        async with conn.transaction():
            definition = await conn.fetchval(
                f"DELETE FROM {s}.{TABLE} WHERE name = $1 RETURNING definition", name
            )
            if definition is None:  # built meanwhile by another run of the same replay
                continue
            exists = await conn.fetchval("SELECT to_regclass($1)", f"{s}.{quote_ident(name)}")
            if exists is None:
                await conn.execute(definition)
            built.append(name)
    return built
