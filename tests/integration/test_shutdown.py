"""Graceful shutdown of a real worker under load (workers/shutdown.py).

On SIGTERM the worker must finish the batches it holds, commit, leave its group and exit
within SEATFLOW_SHUTDOWN_TIMEOUT_S; when a batch cannot finish (a sink is down) it exits
at the bound without acknowledging it, and a second signal ends it at once. Whatever way
it stopped, a restarted worker makes read models equal to the fold of the topics.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from tests.integration.conftest import SettingsFactory
from tests.integration.groups import (
    committed_seat_facts,
    current_run,
    group_members,
    produce_in_steps,
    signal_and_wait,
    sink_positions,
    wait_applied,
    wait_for_log,
)
from tests.integration.harness import (
    WorkerProcess,
    assert_matches_topics,
    produce,
    run_cli,
    wait_drained,
    wait_lag_below,
)
from tests.integration.private_services import PrivateRedis, free_port
from workers.loadgen.scenario import ScenarioShape, scenario
from workers.settings import Settings, StoreKind
from workers.shutdown import SHUTDOWN_TIMEOUT_EXIT_CODE

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

SEAT_BATCH_STUCK = ("redis sink failing", "redis connect failing", "read sink positions failing")
"""What the worker logs when its seat batch in hand starts waiting for Redis: applying it,
connecting, or, for the first batch after a (re)start, reading the sinks' positions
(`continuous` in workers/app.py, inside the batch gate like the rest)."""


def docker_healthcheck() -> list[str]:
    """The HEALTHCHECK command of docker/Dockerfile (exec form), run here with this Python."""
    text = (ROOT / "docker" / "Dockerfile").read_text().replace("\\\n", " ")
    match = re.search(r"^HEALTHCHECK .*? CMD (\[.*\])$", text, re.M)
    assert match, "no HEALTHCHECK in docker/Dockerfile"
    command: list[str] = json.loads(match[1])
    assert command[0] == "python"
    return [sys.executable, *command[1:]]


async def assert_exact_after_restart(settings: Settings, worker: WorkerProcess) -> None:
    worker.start()
    try:
        await wait_drained(settings, worker, within=300)
    finally:
        worker.stop()
    await assert_matches_topics(settings)


async def test_sigterm_during_load_drains_commits_leaves_and_stays_exact(
    settings_factory: SettingsFactory, tmp_path: Path
) -> None:
    settings = settings_factory(
        store=StoreKind.ROCKSDB, data_dir=tmp_path / "data", metrics_port=free_port()
    )
    bound = settings.shutdown_timeout_s
    assert bound < 10  # the default: under 10 s
    assert run_cli(settings, "topics", "apply").returncode == 0
    records = scenario(seed=9, shape=ScenarioShape(reservations=5_000))
    first, rest = records[::2], records[1::2]
    await produce(settings, first)

    worker = WorkerProcess(settings, tmp_path)
    worker.start()
    producing = asyncio.create_task(produce_in_steps(settings, rest))
    try:
        await wait_lag_below(settings, int(len(first) * 0.7), within=300)
        await wait_applied(settings)
        # the image's HEALTHCHECK command, as Docker would run it, against this worker
        health = await asyncio.to_thread(
            subprocess.run, docker_healthcheck(), capture_output=True, text=True, timeout=30,
            env={**os.environ, "SEATFLOW_METRICS_PORT": str(settings.metrics_port)},
        )  # fmt: skip
        assert health.returncode == 0, health.stderr
        code, elapsed = await signal_and_wait(worker, signal.SIGTERM)
    finally:
        await producing
    log = current_run(worker.log_path)
    assert code == 0, worker.log_tail()
    assert elapsed < bound, f"exited {elapsed:.2f}s after SIGTERM, bound {bound}s"
    assert "SIGTERM: draining" in log and "drained in" in log, worker.log_tail()
    assert "LeaveGroup request succeeded" in log

    # left the group: nobody is left in it, without waiting for the session timeout
    assert await group_members(settings) == ("Empty", 0)
    # finished and committed: what the sinks applied is exactly what the group committed
    committed = await committed_seat_facts(settings)
    redis_positions, postgres_positions = await sink_positions(settings)
    assert redis_positions, "the worker applied something before the signal"
    assert redis_positions == postgres_positions
    assert {p: committed.get(p) for p in redis_positions} == redis_positions

    await assert_exact_after_restart(settings, worker)
    print(f"SIGTERM under load: exit 0 in {elapsed:.2f}s (bound {bound}s)")


async def test_bound_and_second_signal_with_a_batch_that_cannot_finish(
    private_redis: PrivateRedis, settings_factory: SettingsFactory, tmp_path: Path
) -> None:
    # private_redis first: set up before and torn down after the factory's clean-up
    bound = 4.0
    settings = settings_factory(redis_url=SecretStr(private_redis.url), shutdown_timeout_s=bound)
    assert run_cli(settings, "topics", "apply").returncode == 0
    records = scenario(seed=13, shape=ScenarioShape(reservations=3_000))
    waves = [records[i::3] for i in range(3)]
    await produce(settings, waves[0])
    worker = WorkerProcess(settings, tmp_path)

    # 1. Redis down: the seat batch in hand retries; SIGTERM waits for it up to the bound
    worker.start()
    await wait_lag_below(settings, int(len(waves[0]) * 0.8), within=300)
    private_redis.stop()
    await produce(settings, waves[1])
    await wait_for_log(worker, *SEAT_BATCH_STUCK)
    code, elapsed = await signal_and_wait(worker, signal.SIGTERM)
    assert code == SHUTDOWN_TIMEOUT_EXIT_CODE, worker.log_tail()
    assert bound - 2 < elapsed < bound + 1, f"exited after {elapsed:.2f}s, bound {bound}s"
    bound_hit = elapsed

    # 2. the same again, and a second SIGTERM during the drain: out at once
    private_redis.start()
    worker.start()
    await wait_for_log(worker, "Ready")
    private_redis.stop()
    await produce(settings, waves[2])
    await wait_for_log(worker, *SEAT_BATCH_STUCK)
    assert worker.proc is not None
    worker.proc.send_signal(signal.SIGTERM)
    await wait_for_log(worker, "SIGTERM: draining")
    code, elapsed = await signal_and_wait(worker, signal.SIGTERM)
    assert code == 128 + signal.SIGTERM, worker.log_tail()
    assert elapsed < 1.0, f"second signal: exited after {elapsed:.2f}s"
    assert "second SIGTERM: exiting at once" in current_run(worker.log_path)

    # nothing was lost or applied twice
    private_redis.start()
    await assert_exact_after_restart(settings, worker)
    print(f"bound {bound}s hit: exit {SHUTDOWN_TIMEOUT_EXIT_CODE} after {bound_hit:.2f}s; "
          f"second signal: exit {code} after {elapsed:.2f}s")  # fmt: skip
