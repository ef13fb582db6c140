"""`seatflow db migrate`: bring the read-model schema up to date.

Exit codes are part of the interface, as for `seatflow topics`: 0 applied or already up to
date, 1 a migration failed (nothing of it was applied), 2 usage or configuration error,
3 PostgreSQL unreachable or refusing the connection.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any
from urllib.parse import unquote, urlsplit

import asyncpg
from pydantic import ValidationError

from workers.db.migrate import migrate_connection
from workers.settings import load_settings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_POSTGRES = 3

CONNECT_TIMEOUT_S = 10.0

_CONNECT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # refused, unreachable, unknown host
    TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,  # SQLSTATE class 08
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,  # 28xxx: bad user/password
    asyncpg.exceptions.InvalidCatalogNameError,  # the database does not exist
    asyncpg.exceptions.CannotConnectNowError,  # starting up / shutting down
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.InterfaceError,
)


class _ConnectFailed(Exception):
    """Raised around a failure to connect, to tell it apart from a failing migration."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "db",
        help="manage the PostgreSQL read-model schema",
        description="Manage the PostgreSQL schema of the read models.",
    )
    parser.set_defaults(func=lambda _args: _usage(parser))
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    migrate = commands.add_parser(
        "migrate",
        help="apply the migrations the schema lacks (idempotent, safe to run concurrently)",
        description="Create or upgrade the read-model schema SEATFLOW_PG_SCHEMA in the "
        "database SEATFLOW_POSTGRES_DSN. Running it again applies nothing.",
        epilog="Exit codes: 0 applied or up to date, 1 a migration failed (and was rolled "
        "back), 2 configuration error, 3 PostgreSQL unreachable.",
    )
    migrate.set_defaults(func=run_migrate)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def run_migrate(_args: argparse.Namespace) -> int:
    try:
        settings = load_settings()
    except ValidationError as e:
        _error(f"invalid settings: {e}")
        return EXIT_USAGE
    dsn = settings.postgres_dsn.get_secret_value()
    try:
        applied = asyncio.run(_migrate(dsn, settings.pg_schema))
    except _ConnectFailed as e:
        cause = e.__cause__
        reason = str(cause) or type(cause).__name__
        _error(
            f"cannot connect to PostgreSQL at {describe_dsn(dsn)} (SEATFLOW_POSTGRES_DSN): "
            f"{scrub(reason, dsn)}"
        )
        return EXIT_POSTGRES
    except asyncpg.PostgresError as e:
        _error(f"migration of schema {settings.pg_schema!r} failed: {scrub(str(e), dsn)}")
        return EXIT_FAILED
    if applied:
        for name in applied:
            print(f"applied {name} to schema {settings.pg_schema}")
    else:
        print(f"schema {settings.pg_schema} is up to date")
    return EXIT_OK


async def _migrate(dsn: str, schema: str) -> list[str]:
    try:
        conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S)
    except _CONNECT_ERRORS as e:
        raise _ConnectFailed from e
    except ValueError as e:  # an unparsable DSN: asyncpg's message may quote it whole
        raise _ConnectFailed from ValueError(f"invalid DSN ({type(e).__name__})")
    try:
        return await migrate_connection(conn, schema)
    finally:
        await conn.close()


def describe_dsn(dsn: str) -> str:
    """host:port/db of a DSN, for messages: never the user's password."""
    try:
        parts = urlsplit(dsn)
        host = parts.hostname or "localhost"
        port = parts.port or 5432
    except ValueError:
        return "<unparsable DSN>"
    database = unquote(parts.path.lstrip("/")) or "(default database)"
    return f"{host}:{port}/{database}"


def scrub(message: str, dsn: str) -> str:
    """Remove the DSN's password from a message, in case a driver echoes it."""
    try:
        password = urlsplit(dsn).password
    except ValueError:
        password = None
    message = " ".join(message.split())  # one line
    if password:
        message = message.replace(password, "***").replace(unquote(password), "***")
    return message


def _error(message: str) -> None:
    print(f"seatflow db: error: {message}", file=sys.stderr)
