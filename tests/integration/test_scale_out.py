"""Scale-out: several worker processes in one consumer group, one of them killed.

Two workers share the partitions under load, a third joins, then one is SIGKILLed in the
middle of the stream: after the session timeout the group rebalances, the survivors take
its partitions and its seat-table state (changelog recovery; one standby replica each),
and the read models end equal to the fold of the topics. Every worker has its own RocksDB
directory, as separate machines would.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

from tests.integration.conftest import SettingsFactory
from tests.integration.groups import produce_in_steps, wait_members
from tests.integration.harness import (
    WorkerProcess,
    assert_matches_topics,
    produce,
    run_cli,
    wait_drained,
    wait_lag_below,
)
from workers.loadgen.scenario import ScenarioShape, scenario
from workers.settings import StoreKind

pytestmark = pytest.mark.integration

SESSION_TIMEOUT_S = 6.0


async def test_two_then_three_workers_and_the_rest_take_over_a_killed_one(
    settings_factory: SettingsFactory, tmp_path: Path
) -> None:
    settings = settings_factory(
        store=StoreKind.ROCKSDB, session_timeout_s=SESSION_TIMEOUT_S, standby_replicas=1
    )
    assert run_cli(settings, "topics", "apply").returncode == 0
    records = scenario(seed=17, shape=ScenarioShape(reservations=4_000))
    waves = [records[i::4] for i in range(4)]  # every wave holds every kind of event

    def worker(n: int) -> WorkerProcess:
        own = settings.model_copy(update={"data_dir": tmp_path / f"data-{n}", "metrics_port": 0})
        return WorkerProcess(own, tmp_path, name=f"worker-{n}")

    workers = [worker(n) for n in (1, 2, 3)]
    first, second, third = workers
    await produce(settings, waves[0])
    try:
        # two workers in one group, records arriving while they run
        first.start()
        second.start()
        await wait_members(settings, 2)
        await produce_in_steps(settings, waves[1], steps=4, pause=0.3)

        # a third joins under load
        third.start()
        joined = await wait_members(settings, 3)
        producing = asyncio.create_task(produce_in_steps(settings, waves[2], steps=6))
        await wait_lag_below(settings, len(waves[2]) // 2, within=300)

        # one is killed mid-stream; the other two take its partitions over
        second.kill(signal.SIGKILL)
        killed = time.monotonic()
        await producing
        await produce(settings, waves[3])
        await wait_members(settings, 2, within=SESSION_TIMEOUT_S * 3 + 60)
        took_over = time.monotonic() - killed
        assert first.alive() and third.alive()
        await wait_drained(settings, first, within=600)
        drained = time.monotonic() - killed
        assert third.alive(), third.log_tail()
    finally:
        for process in workers:
            process.stop()
    for process in (first, third):
        assert process.proc is not None and process.proc.returncode == 0, process.log_tail()

    await assert_matches_topics(settings)
    print(f"third joined in {joined:.1f}s; after the SIGKILL the group was back to 2 "
          f"members in {took_over:.1f}s (session timeout {SESSION_TIMEOUT_S}s) and drained "
          f"in {drained:.1f}s")  # fmt: skip
