"""Versioned, idempotent migrations of the read-model schema.

Migrations are the files `migrations/NNNN_name.sql` beside this module, applied in version
order. Their table names are unqualified: the runner sets `search_path` to the configured
schema, so the same files build `read_model` in production and a unique schema per test.

Why it is shaped this way:

- Every worker migrates at start, so several may do it at once: each migration runs in one
  transaction that first takes a transaction-scoped advisory lock keyed by the schema, so
  concurrent runners queue up and the later ones find the work done.
- `schema_migrations` (inside the schema, so a schema carries its own history and dropping
  it drops everything) records what ran; running again applies nothing.
- A migration either fully applies, with its `schema_migrations` row, or not at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_CLASS = 0x5EA7F10  # first key of the advisory lock: "this is a seatflow migration"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    """The file name without `.sql`, e.g. `0001_read_model`."""
    sql: str


def quote_ident(name: str) -> str:
    """Quote an SQL identifier, so any schema name (even a strange one) is taken literally."""
    return '"' + name.replace('"', '""') + '"'


def load_migrations() -> list[Migration]:
    """The packaged migrations, by version; duplicate versions are a packaging bug."""
    found: dict[int, Migration] = {}
    folder = resources.files("workers.db").joinpath("migrations")
    for entry in folder.iterdir():
        match = _FILE_NAME.match(entry.name)
        if match is None:
            continue
        version = int(match.group(1))
        if version in found:
            raise RuntimeError(f"two migrations with version {version}: {entry.name}")
        found[version] = Migration(version, entry.name[: -len(".sql")], entry.read_text("utf-8"))
    return [found[v] for v in sorted(found)]


_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


async def migrate(dsn: str, schema: str) -> list[str]:
    """Apply the migrations `schema` lacks; return the names applied (empty: up to date)."""
    conn: asyncpg.Connection = await asyncpg.connect(dsn)
    try:
        return await migrate_connection(conn, schema)
    finally:
        await conn.close()


async def migrate_connection(conn: asyncpg.Connection, schema: str) -> list[str]:
    """`migrate` on an open connection (which is left open, with its search_path unchanged)."""
    applied: list[str] = []
    quoted = quote_ident(schema)
    for migration in load_migrations():
        async with conn.transaction():
            # Serialise runners on this schema before looking at anything: CREATE SCHEMA /
            # CREATE TABLE IF NOT EXISTS are not safe against concurrent creators.
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))", _LOCK_CLASS, schema
            )
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
            # SET LOCAL: the search_path lasts only as long as this transaction.
            await conn.execute(f"SET LOCAL search_path TO {quoted}")
            await conn.execute(_BOOKKEEPING)
            done = await conn.fetchval(
                "SELECT true FROM schema_migrations WHERE version = $1", migration.version
            )
            if done:
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
            applied.append(migration.name)
    return applied
