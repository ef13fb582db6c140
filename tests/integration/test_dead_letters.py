"""The bad-input corpus interleaved with valid events, through a real worker process.

Every bad record must land in its source's dead-letter topic, untouched, with a specific
reason; every valid event must be applied (read models == the fold of the topics); nothing
of a bad record may appear in any read model; strings full of SQL / Redis / Lua
metacharacters must be stored verbatim; and the worker must never restart.
"""

from __future__ import annotations

import random
import time
from datetime import datetime
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from tests.bad_input import load_corpus
from tests.integration.conftest import SettingsFactory
from tests.integration.dlq_support import (
    Outgoing,
    dead_letters,
    end_offsets,
    fatal_lines,
    produce_records,
)
from tests.integration.harness import WorkerProcess, read_models, run_cli, wait_drained
from workers.loadgen.scenario import ScenarioShape, scenario
from workers.settings import Settings
from workers.topic_catalog import load_catalog
from workers.verify.topics import fold_topics

pytestmark = pytest.mark.integration

corpus = load_corpus()


def interleaved() -> tuple[list[Outgoing], dict[int, object]]:
    """Valid upstream events with the corpus spread among them (deterministically);
    returns the records and, by index, the corpus item each bad record is."""
    valid = [
        Outgoing(r.topic, r.key, r.value)
        for r in scenario(seed=3, shape=ScenarioShape(concert_events=2, seats_per_event=150,
                                                      reservations=500))
    ]  # fmt: skip
    valid += [Outgoing(v.topic, v.key, v.value, v.headers) for v in corpus.VALID]
    bad = list(corpus.BAD)
    random.Random(4).shuffle(bad)
    records: list[Outgoing] = []
    items: dict[int, object] = {}
    step = len(valid) // len(bad)
    for index, item in enumerate(bad):
        records += valid[index * step : (index + 1) * step]
        items[len(records)] = item
        records.append(Outgoing(item.topic, item.key, item.value, item.headers))
    records += valid[len(bad) * step :]
    return records, items


async def test_corpus_interleaved_with_valid_events(
    settings_factory: SettingsFactory, tmp_path: Path
) -> None:
    started = time.monotonic()
    settings = settings_factory()
    assert run_cli(settings, "topics", "apply").returncode == 0
    records, items = interleaved()
    positions = await produce_records(settings, records)
    expected_at = {positions[i]: item for i, item in items.items()}

    worker = WorkerProcess(settings, tmp_path)
    worker.start()
    pid = worker.proc.pid if worker.proc else None
    try:
        await wait_drained(settings, worker, within=240)
        letters = await dead_letters(settings)
        assert worker.alive() and worker.proc is not None and worker.proc.pid == pid
    finally:
        worker.stop()
    assert worker.starts == 1 and not fatal_lines(worker), fatal_lines(worker)

    # ---- every bad record is one dead letter of its source, untouched, with its reason
    catalog = load_catalog(settings)
    by_origin = {(d.ours["origin.topic"], d.origin_partition, d.origin_offset): d for d in letters}
    assert len(by_origin) == len(letters) == len(corpus.BAD)
    assert set(by_origin) == set(expected_at)
    for origin, item in expected_at.items():
        letter = by_origin[origin]
        assert letter.dlq_topic == catalog.dead_letter_for(item.topic).name, item.id
        assert (letter.key, letter.value) == (item.key, item.value), item.id
        assert letter.original_headers == item.headers, item.id
        ours = letter.ours
        assert ours["error.kind"] == item.kind, (item.id, letter.reason)
        assert ours["error.class"] == f"DecodeError:{item.kind}"
        assert item.reason in letter.reason, (item.id, letter.reason)
        assert ours["group"] == settings.consumer_group and ours["worker"].endswith(f":{pid}")
        assert int(ours["origin.timestamp"]) > 0 and datetime.fromisoformat(ours["failed.at"])
        assert "DecodeError" in ours["stack"] and len(ours["stack"].encode()) <= 4096
        assert "schema.version" in ours
    near_max = next(d for d in letters if len(d.value or b"") > 1_000_000)
    assert near_max.ours["schema.version"] == "reservation-created/v1"

    # ---- every valid event applied, nothing of a bad one anywhere
    actual = await read_models(settings)
    expected = await fold_topics(settings, catalog)
    differences = actual.differences(expected)
    assert not differences, "\n".join(differences[:20])
    everything = repr(actual.tables) + repr(actual.hashes)
    leaked = {i for item in corpus.BAD for i in item.ids if i in everything}
    assert not leaked
    await assert_metacharacters_verbatim(settings)

    # ---- the tools see the same
    listing = run_cli(settings, "dlq", "list")
    assert listing.returncode == 0, listing.stderr
    assert f"{len(corpus.BAD)} dead letter(s) in 4 topic(s)" in listing.stdout
    show = run_cli(settings, "dlq", "show", "--topic", "reservation-created", "--reason",
                   "at most 128 characters")  # fmt: skip
    assert show.returncode == 0 and "truncated (--full" in show.stdout
    assert len(show.stdout) < 20_000
    sources = [s.name for s in catalog.sources()]
    before = await end_offsets(settings, sources)
    dry = run_cli(settings, "dlq", "redrive", "--dry-run")
    assert dry.returncode == 1, dry.stdout + dry.stderr  # all still rejected: none to send
    assert f"0 would send, {len(corpus.BAD)} still rejected" in dry.stdout
    assert await end_offsets(settings, sources) == before
    assert time.monotonic() - started < 240


async def assert_metacharacters_verbatim(settings: Settings) -> None:
    """SQL, RESP, Lua and glob metacharacters stored byte for byte, never executed."""
    seat0, seat1, seat2 = corpus.META_SEATS
    res0 = corpus.META_RESERVATIONS[0]
    conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
    try:
        s = f'"{settings.pg_schema}"'
        row = await conn.fetchrow(
            f"SELECT customer_id, section, seat_number FROM {s}.reservations "
            "WHERE reservation_id = $1", res0,
        )  # fmt: skip
        assert row is not None
        assert row["customer_id"] == corpus.SQL_CUSTOMER
        assert row["section"] == corpus.REDIS_SECTION
        assert row["seat_number"] == f"{corpus.REDIS_SECTION}-{corpus.ODD_ROW}-1"
        order = await conn.fetchrow(
            f"SELECT customer_id FROM {s}.orders WHERE order_id = $1", corpus.META_ORDER
        )
        assert order is not None and order["customer_id"] == corpus.RESP_CUSTOMER
        customers = {
            r["customer_id"]: r for r in await conn.fetch(f"SELECT * FROM {s}.customer_activity")
        }
        assert customers[corpus.RESP_CUSTOMER]["orders"] == 1
        assert customers[corpus.GLOB_CUSTOMER]["expirations"] == 1
        sections = {
            r["section"] for r in await conn.fetch(f"SELECT section FROM {s}.event_sales_daily")
        }
        assert {corpus.REDIS_SECTION, corpus.SQL_SECTION} <= sections
        assert await conn.fetchval(f"SELECT count(*) FROM {s}.reservations") > 100
    finally:
        await conn.close()
    redis = aioredis.from_url(settings.redis_url.get_secret_value(), decode_responses=True)
    try:
        p = settings.redis_prefix
        seat = await redis.hgetall(f"{p}seat:{seat0}")
        assert seat["section"] == corpus.REDIS_SECTION
        assert seat["seat_number"] == f"{corpus.REDIS_SECTION}-{corpus.ODD_ROW}-1"
        assert seat["customer_id"] == corpus.SQL_CUSTOMER and seat["status"] == "reserved"
        assert (await redis.hgetall(f"{p}seat:{seat1}"))["customer_id"] == corpus.RESP_CUSTOMER
        assert (await redis.hgetall(f"{p}seat:{seat2}"))["status"] == "available"
        availability = await redis.hgetall(f"{p}availability:{corpus.META_EVENT}")
        assert availability[f"{corpus.LUA_SECTION}:available"] == "1"
        assert availability[f"{corpus.REDIS_SECTION}:available"] == "0"
        assert availability["total"] == "3" and availability["ordered"] == "1"
        assert await redis.dbsize() > 100  # nothing flushed
    finally:
        await redis.aclose()
