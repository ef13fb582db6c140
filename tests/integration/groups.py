"""What Kafka and the sinks say about a consumer group: members, commits, applied positions.

For the shutdown and scale-out tests, which must show that a worker committed what it
applied and left its group (or that the others took its partitions over).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from tests.integration.harness import WorkerProcess, produce
from workers.kafka_clients import client_kwargs
from workers.loadgen.scenario import UpstreamRecord
from workers.settings import Settings
from workers.sinks.postgres_sink import PostgresSink
from workers.sinks.redis_sink import RedisSink
from workers.topic_catalog import load_catalog

SEAT_FACTS = "seatflow.seat-facts"


async def group_members(settings: Settings) -> tuple[str, int]:
    """(state, number of members) of the settings' consumer group."""
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([settings.consumer_group])
        # DescribeGroupsResponse: (error_code, group_id, state, protocol_type, protocol,
        # members, ...)
        group = response.groups[0]
        return str(group[2]), len(group[5])
    finally:
        await admin.close()


async def wait_members(settings: Settings, count: int, within: float = 90) -> float:
    """Until the group is stable with `count` members; returns the seconds it took."""
    started = time.monotonic()
    state, members = "", -1
    while time.monotonic() - started < within:
        state, members = await group_members(settings)
        if members == count and state == "Stable":
            return time.monotonic() - started
        await asyncio.sleep(0.5)
    raise AssertionError(f"group not Stable with {count} members in {within}s: {state} {members}")


async def committed_seat_facts(settings: Settings) -> dict[int, int]:
    """The group's committed offset per seat-facts partition."""
    topic = load_catalog(settings).get(SEAT_FACTS).name
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(settings.consumer_group)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}


async def sink_positions(settings: Settings) -> tuple[dict[int, int], dict[int, int]]:
    """(Redis, PostgreSQL): the next seat-facts offset each sink has applied, per partition."""
    topic = load_catalog(settings).get(SEAT_FACTS).name
    redis = await RedisSink.connect(settings)
    postgres = await PostgresSink.connect(settings)
    try:
        return await redis.positions(topic), await postgres.positions(topic)
    finally:
        await redis.close()
        await postgres.close()


async def wait_applied(settings: Settings, within: float = 120) -> None:
    """Until both sinks have applied some seat-facts (the seat stage is at work)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        redis, postgres = await sink_positions(settings)
        if redis and postgres:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"the sinks applied nothing in {within}s")


async def produce_in_steps(
    settings: Settings, records: Sequence[UpstreamRecord], steps: int = 8, pause: float = 0.5
) -> None:
    """Produce `records` in `steps` parts with pauses: load that keeps arriving."""
    size = -(-len(records) // steps)
    for i in range(0, len(records), size):
        await produce(settings, records[i : i + size])
        await asyncio.sleep(pause)


async def signal_and_wait(worker: WorkerProcess, sig: int, within: float = 60) -> tuple[int, float]:
    """Send `sig` to the worker; (exit code, seconds until it exited)."""
    assert worker.proc is not None
    started = time.monotonic()
    os.killpg(worker.proc.pid, sig)
    code = await asyncio.to_thread(worker.proc.wait, within)
    return code, time.monotonic() - started


async def wait_for_log(worker: WorkerProcess, *texts: str, within: float = 60) -> None:
    """Until the worker's log (its current run) contains one of `texts`."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        log = current_run(worker.log_path)
        if any(text in log for text in texts):
            return
        if not worker.alive():
            raise AssertionError(f"worker exited:\n{worker.log_tail()}")
        await asyncio.sleep(0.2)
    raise AssertionError(f"none of {texts} logged in {within}s:\n{worker.log_tail()}")


def current_run(log_path: Path) -> str:
    """The log of the worker's latest start (WorkerProcess appends one per start)."""
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    return text.rsplit("===== start ", 1)[-1]
