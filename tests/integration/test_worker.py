"""The worker process on real Kafka, PostgreSQL and Redis, against the fold of the topics."""

from __future__ import annotations

import signal
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from tests.integration.conftest import SettingsFactory
from tests.integration.dropping_worker import DROPPED_MARK
from tests.integration.harness import (
    WorkerProcess,
    assert_matches_topics,
    produce,
    read_models,
    run_cli,
    wait_drained,
    wait_lag_below,
)
from workers.loadgen.scenario import ScenarioShape, scenario
from workers.settings import StoreKind

DROPPING_WORKER = (sys.executable, "-m", "tests.integration.dropping_worker", "worker")

pytestmark = pytest.mark.integration


async def test_worker_projects_20k_upstream_events_exactly(
    settings_factory: SettingsFactory, tmp_path: Path
) -> None:
    settings = settings_factory()
    assert run_cli(settings, "topics", "apply").returncode == 0
    records = scenario(seed=11)
    assert len(records) >= 20_000
    await produce(settings, records)

    worker = WorkerProcess(settings, tmp_path)
    worker.start()
    try:
        await wait_drained(settings, worker, within=600)
    finally:
        worker.stop()

    expected = await assert_matches_topics(settings)
    actual = await read_models(settings)
    # the scenario exercises every table and key family
    assert all(len(rows) > 50 for rows in expected.tables.values())
    assert {key.split(":")[0] for key in expected.hashes} == {"seat", "seatmap", "availability"}
    # money exact to the cent: revenue equals the sum of the order items' prices
    revenue = sum(row[3] for row in actual.tables["event_sales_daily"].values())
    items = sum(row[1] for row in actual.tables["order_items"].values())
    assert revenue == items and isinstance(revenue, Decimal) and revenue > 0


async def test_records_dropped_before_the_agents_are_read_again_not_committed_past(
    settings_factory: SettingsFactory, tmp_path: Path
) -> None:
    """The consumer drops one record in seven the first time it fetches it, as Faust does
    at times (tests/integration/dropping_worker.py): nothing may be lost."""
    settings = settings_factory()
    assert run_cli(settings, "topics", "apply").returncode == 0
    await produce(settings, scenario(seed=11, shape=ScenarioShape(reservations=1_500)))
    worker = WorkerProcess(settings, tmp_path, command=DROPPING_WORKER)
    worker.start()
    try:
        await wait_drained(settings, worker, within=300)
    finally:
        worker.stop()
    log = worker.log_path.read_text(errors="replace")
    dropped = {line.split()[-1].split("/")[0].split(".", 1)[1]
               for line in log.splitlines() if line.startswith(DROPPED_MARK)}  # fmt: skip
    assert {"reservation-created", "order-placed", "seatflow.seat-facts"} <= dropped
    assert "were passed over" in log
    await assert_matches_topics(settings)


async def test_worker_killed_three_times_mid_stream_stays_exact(
    settings_factory: SettingsFactory, tmp_path: Path
) -> None:
    settings = settings_factory(store=StoreKind.ROCKSDB, data_dir=tmp_path / "data")
    assert run_cli(settings, "topics", "apply").returncode == 0
    records = scenario(seed=5, shape=ScenarioShape(reservations=9_000))
    waves = [records[i::4] for i in range(4)]  # every wave holds every kind of event

    worker = WorkerProcess(settings, tmp_path)
    for wave in waves[:3]:
        await produce(settings, wave)
        worker.start()
        # let it get well into the wave, then crash it
        await wait_lag_below(settings, int(len(wave) * 0.7), within=300)
        worker.kill(signal.SIGKILL)
    await produce(settings, waves[3])
    worker.start()
    try:
        await wait_drained(settings, worker, within=600)
    finally:
        worker.stop()
    assert worker.starts == 4

    await assert_matches_topics(settings)
