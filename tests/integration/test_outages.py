"""A sink's server, or the Kafka broker, stopped for 20 s mid-stream, then started again.

Nothing may be dead-lettered, lost or applied twice; the worker must not exit; it must log
one "failing" and one "recovered" line for the sink (not one per retry); and the batch it
was flushing when the sink failed must stay unacknowledged: the OTHER sink commits its
part of that batch, so for a while that sink is ahead of the consumer group's committed
offsets, and after recovery every read model still equals the reference exactly.

Each test runs its own PostgreSQL, Redis or Kafka server (never the shared ones).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr

from tests.integration.conftest import SettingsFactory
from tests.integration.dlq_support import (
    committed,
    dead_letters,
    fatal_lines,
    log_lines,
    sink_positions,
)
from tests.integration.harness import (
    WorkerProcess,
    assert_matches_topics,
    produce,
    run_cli,
    wait_drained,
    wait_lag_below,
)
from tests.integration.private_kafka import PrivateKafka
from tests.integration.private_services import PrivatePostgres, PrivateRedis
from workers.app import SEAT_FACTS
from workers.loadgen.scenario import ScenarioShape, UpstreamRecord, scenario
from workers.settings import Settings
from workers.topic_catalog import load_catalog

pytestmark = pytest.mark.integration

OUTAGE_S = 20.0
SHAPE = ScenarioShape(concert_events=3, seats_per_event=200, reservations=2500)


async def start_mid_stream(
    settings: Settings, tmp_path: Path, seed: int
) -> tuple[WorkerProcess, list[UpstreamRecord]]:
    """Half of a scenario produced, a worker started on it and a third of that half
    processed; returns the worker and the other half, to produce later."""
    assert run_cli(settings, "topics", "apply").returncode == 0
    records = scenario(seed=seed, shape=SHAPE)
    before, rest = records[: len(records) // 2], records[len(records) // 2 :]
    await produce(settings, before)
    worker = WorkerProcess(settings, tmp_path)
    worker.start()
    try:
        await wait_lag_below(settings, int(len(before) * 0.7), within=180)
    except BaseException:
        worker.stop()
        raise
    return worker, rest


async def run_outage(
    settings: Settings, tmp_path: Path, down: str, stop: Callable[[], None],
    start: Callable[[], None],
) -> None:  # fmt: skip
    """Drive one outage of sink `down` ("postgres" or "redis") and check everything."""
    other = "redis" if down == "postgres" else "postgres"
    worker, during = await start_mid_stream(settings, tmp_path, seed=21)
    pid = worker.proc.pid if worker.proc else None
    facts_topic = load_catalog(settings).get(SEAT_FACTS).name
    try:
        stop()
        stopped = time.monotonic()
        # events keep flowing during the outage
        for chunk in range(4):
            await produce(settings, during[chunk::4])
            await asyncio.sleep(1)
        await asyncio.sleep(max(0.0, stopped + 8 - time.monotonic()))
        frozen = await committed(settings, facts_topic)
        await asyncio.sleep(max(0.0, stopped + OUTAGE_S - 2 - time.monotonic()))
        assert await committed(settings, facts_topic) == frozen, "acknowledged while down"
        ahead = await sink_positions(settings, other)
        # The batch in hand when the sink failed: the other sink applied (committed) it,
        # the group did not acknowledge it.
        assert all(frozen.get(p, 0) <= o for p, o in ahead.items()), (frozen, ahead)
        assert sum(ahead.values()) > sum(frozen.values()), (frozen, ahead)
        assert len(log_lines(worker, f"{down} sink failing")) == 1
        await asyncio.sleep(max(0.0, stopped + OUTAGE_S - time.monotonic()))
        start()
        await wait_drained(settings, worker, within=240)
        assert worker.alive() and worker.proc is not None and worker.proc.pid == pid
    finally:
        worker.stop()

    assert worker.starts == 1 and not fatal_lines(worker), fatal_lines(worker)
    assert len(log_lines(worker, f"{down} sink failing")) == 1, worker.log_tail()
    assert len(log_lines(worker, f"{down} sink recovered")) == 1, worker.log_tail()
    assert not log_lines(worker, f"{other} sink failing")
    assert await dead_letters(settings) == []
    await assert_matches_topics(settings)
    # both sinks end at the same positions, those the group committed
    final = await committed(settings, facts_topic)
    assert await sink_positions(settings, "postgres") == await sink_positions(settings, "redis")
    assert await sink_positions(settings, down) == {p: o for p, o in final.items() if o > 0}


async def test_postgres_down_for_20s_while_events_flow(
    private_postgres: PrivatePostgres, settings_factory: SettingsFactory, tmp_path: Path
) -> None:
    settings = settings_factory(postgres_dsn=SecretStr(private_postgres.dsn))
    await run_outage(settings, tmp_path, "postgres", private_postgres.stop, private_postgres.start)


async def test_redis_down_for_20s_while_events_flow(
    private_redis: PrivateRedis, settings_factory: SettingsFactory, tmp_path: Path
) -> None:
    settings = settings_factory(redis_url=SecretStr(private_redis.url))
    await run_outage(settings, tmp_path, "redis", private_redis.stop, private_redis.start)


async def test_kafka_broker_killed_for_20s_mid_stream(
    plain_kafka: PrivateKafka, settings_factory: SettingsFactory, tmp_path: Path
) -> None:
    """The broker is killed mid-stream (the worker's consumer, its producer and the
    changelog and seat-facts sends all lose it) and started again 20 s later: the worker
    waits and goes on in the same process, nothing is dead-lettered, lost or applied
    twice, and the log says so in a few lines."""
    settings = settings_factory(kafka_bootstrap=plain_kafka.bootstrap)
    worker, after = await start_mid_stream(settings, tmp_path, seed=22)
    pid = worker.proc.pid if worker.proc else None
    try:
        plain_kafka.stop()
        await asyncio.sleep(OUTAGE_S)
        assert worker.alive(), worker.log_tail()
        await asyncio.to_thread(plain_kafka.start)
        await produce(settings, after)
        await wait_drained(settings, worker, within=300)
        assert worker.alive() and worker.proc is not None and worker.proc.pid == pid
    finally:
        worker.stop()

    assert worker.starts == 1 and not fatal_lines(worker), fatal_lines(worker)
    # The outage shows in the log, once per kind of failure and 30 s: not ten times a
    # second per client, as aiokafka logs it (workers/observability/log_throttle.py).
    assert log_lines(worker, r"Unable connect to node|Failed fetch messages"), worker.log_tail()
    errors = log_lines(worker, r"\bERROR\b")
    assert len(errors) <= 30, "\n".join(errors)
    assert await dead_letters(settings) == []
    await assert_matches_topics(settings)
