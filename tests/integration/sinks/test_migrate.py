"""Schema migrations: idempotent, recorded, safe when workers start together; the CLI."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import asyncpg
import pytest

from tests.integration.conftest import SettingsFactory
from workers.db.migrate import load_migrations, migrate, quote_ident

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
ALL = [m.name for m in load_migrations()]


async def test_migrate_twice_applies_once(settings_factory: SettingsFactory) -> None:
    settings = settings_factory()
    dsn = settings.postgres_dsn.get_secret_value()
    assert ALL and ALL[0] == "0001_read_model"
    assert await migrate(dsn, settings.pg_schema) == ALL
    assert await migrate(dsn, settings.pg_schema) == []
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            f'SELECT version, name, applied_at FROM "{settings.pg_schema}".schema_migrations'
            " ORDER BY version"
        )
        tables = {
            r["table_name"]
            for r in await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = $1",
                settings.pg_schema,
            )
        }
    finally:
        await conn.close()
    assert [(r["version"], r["name"]) for r in rows] == [(1, "0001_read_model")]
    assert all(r["applied_at"] is not None for r in rows)
    assert tables == {
        "schema_migrations", "reservations", "orders", "order_items", "customer_activity",
        "event_sales_daily", "projection_checkpoints",
    }  # fmt: skip


async def test_concurrent_migrations_are_safe(settings_factory: SettingsFactory) -> None:
    """Workers starting together: the advisory lock lets exactly one of them migrate."""
    settings = settings_factory()
    dsn = settings.postgres_dsn.get_secret_value()
    results = await asyncio.gather(*(migrate(dsn, settings.pg_schema) for _ in range(4)))
    assert sorted(results) == [[], [], [], ALL]


async def test_schema_names_are_quoted(settings_factory: SettingsFactory) -> None:
    """An odd schema name is an identifier, not SQL (nor the default schema)."""
    settings = settings_factory()
    odd = f'{settings.pg_schema}_"odd-Name'
    dsn = settings.postgres_dsn.get_secret_value()
    try:
        assert await migrate(dsn, odd) == ALL
        assert await migrate(dsn, odd) == []
    finally:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(odd)} CASCADE")
        finally:
            await conn.close()


async def run_cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "workers.cli", *args,
        cwd=ROOT, env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_cli_db_migrate(settings_factory: SettingsFactory) -> None:
    settings = settings_factory()
    env = {"SEATFLOW_PG_SCHEMA": settings.pg_schema}
    code, out, err = await run_cli("db", "migrate", env=env)
    assert (code, err) == (0, "")
    assert out == f"applied 0001_read_model to schema {settings.pg_schema}\n"
    code, out, _ = await run_cli("db", "migrate", env=env)
    assert code == 0
    assert out == f"schema {settings.pg_schema} is up to date\n"


async def test_cli_db_migrate_unreachable(settings_factory: SettingsFactory) -> None:
    """One line naming host, port and database, never the password; exit code 3."""
    settings = settings_factory()
    env = {
        "SEATFLOW_PG_SCHEMA": settings.pg_schema,
        "SEATFLOW_POSTGRES_DSN": "postgresql://seatflow:s3cr3t-pw@127.0.0.1:1/seatflow",
    }
    code, out, err = await run_cli("db", "migrate", env=env)
    assert code == 3
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert "127.0.0.1:1/seatflow" in err
    assert "s3cr3t" not in err

    env["SEATFLOW_POSTGRES_DSN"] = "postgresql://seatflow:s3cr3t-pw@127.0.0.1:5432/seatflow"
    code, _, err = await run_cli("db", "migrate", env=env)  # wrong password
    assert code == 3
    assert "127.0.0.1:5432/seatflow" in err
    assert "s3cr3t" not in err
