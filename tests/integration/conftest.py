"""Factories for isolated use of the real services started by `scripts/services up`.

Every test gets its own topic prefix, consumer group, PostgreSQL schema and Redis key
prefix, so tests never see each other, and everything is removed afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiokafka.admin import AIOKafkaAdminClient

from tests.integration.private_kafka import PrivateKafka
from tests.integration.private_services import PrivatePostgres, PrivateRedis
from workers.generation import CONTROL_SCHEMA, old_prefix, shadow_prefix
from workers.kafka_clients import client_kwargs
from workers.settings import Settings, StoreKind

pytestmark = pytest.mark.integration

SettingsFactory = Callable[..., Settings]


@pytest.fixture
def base_settings() -> Settings:
    return Settings()


@pytest.fixture
async def settings_factory(
    base_settings: Settings, unique_id: str
) -> AsyncIterator[SettingsFactory]:
    """Make isolated Settings; the topics, schemas and keys they name are removed afterwards."""
    made: list[Settings] = []

    def make(**overrides: object) -> Settings:
        n = len(made)
        suffix = unique_id if n == 0 else f"{unique_id}_{n}"
        values: dict[str, object] = {
            "topic_prefix": f"{suffix}.",
            "consumer_group": f"seatflow-{suffix}",
            "pg_schema": f"rm_{suffix}",
            "redis_prefix": f"{suffix}:sf:",
            "store": StoreKind.MEMORY,
            "metrics_port": 0,  # several test workers run at once; monitoring tests pick one
        }
        values.update(overrides)
        settings = base_settings.model_copy(update=values)
        made.append(settings)
        return settings

    yield make
    for settings in made:
        await _cleanup(settings)


async def _cleanup(settings: Settings) -> None:
    conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{settings.pg_schema}" CASCADE')
        for suffix in ("_shadow", "_old"):
            await conn.execute(f'DROP SCHEMA IF EXISTS "{settings.pg_schema}{suffix}" CASCADE')
        if await conn.fetchval("SELECT to_regclass($1)", f"{CONTROL_SCHEMA}.generations"):
            await conn.execute(
                f"DELETE FROM {CONTROL_SCHEMA}.generations WHERE read_model_schema = $1",
                settings.pg_schema,
            )
    finally:
        await conn.close()
    client = aioredis.from_url(settings.redis_url.get_secret_value())
    try:
        batch: list[bytes] = []
        async for key in client.scan_iter(match=f"{settings.topic_prefix}*", count=1000):
            batch.append(key)
        # the live prefix, and the replay's shadow and old copies beside it
        live = settings.redis_prefix
        for prefix in (live, shadow_prefix(live), old_prefix(live)):
            async for key in client.scan_iter(match=f"{prefix}*", count=1000):
                batch.append(key)
        for i in range(0, len(batch), 1000):
            await client.delete(*batch[i : i + 1000])
    finally:
        await client.aclose()
    if settings.topic_prefix:
        admin = AIOKafkaAdminClient(**client_kwargs(settings))
        await admin.start()
        try:
            names = [t for t in await admin.list_topics() if t.startswith(settings.topic_prefix)]
            if names:
                await admin.delete_topics(names)
        finally:
            await admin.close()


@pytest.fixture
async def kafka_admin(base_settings: Settings) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(bootstrap_servers=base_settings.kafka_bootstrap)
    await admin.start()
    yield admin
    await admin.close()


@pytest.fixture
async def migrated_settings(settings_factory: SettingsFactory) -> Settings:
    """Isolated Settings whose PostgreSQL schema already has the read-model tables."""
    from workers.db.migrate import migrate

    settings = settings_factory()
    await migrate(settings.postgres_dsn.get_secret_value(), settings.pg_schema)
    return settings


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    """A Redis of this test's own, which it may stop and start (outage tests)."""
    server = PrivateRedis()
    server.start()
    yield server
    server.close()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL cluster of this test's own, which it may stop and start (outage tests)."""
    server = PrivatePostgres()
    server.start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def private_kafka() -> Iterator[PrivateKafka]:
    """A Kafka broker of this module's own with a SASL_SSL listener (SCRAM and PLAIN users).

    Module-scoped: starting a broker takes ~15 s, and the secured-connection tests only
    read and write topics of their own prefixes on it.
    """
    broker = PrivateKafka()
    try:
        broker.start()
        yield broker
    finally:
        broker.close()


@pytest.fixture
def plain_kafka() -> Iterator[PrivateKafka]:
    """A plaintext Kafka broker of this test's own, which it may kill and start again."""
    broker = PrivateKafka(secured=False)
    try:
        broker.start()
        yield broker
    finally:
        broker.close()


WORKER_LOG_LINES = 120


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On a failed test, show what its workers warned about (the CI output is all there is
    to go by): the warnings, errors and start markers of every `*.log` in its tmp_path."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    tmp_path = getattr(item, "funcargs", {}).get("tmp_path")
    if report.when != "call" or not report.failed or tmp_path is None:
        return
    for log in sorted(Path(tmp_path).glob("*.log")):
        lines = [
            line
            for line in log.read_text(errors="replace").splitlines()
            if "WARNING" in line or "ERROR" in line or "CRITICAL" in line or "=====" in line
        ]
        report.sections.append(
            (f"{log.name}: warnings and errors", "\n".join(lines[-WORKER_LOG_LINES:]))
        )
