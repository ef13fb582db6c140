"""retry_until_done: retries what the policy says, pauses partitions, logs state changes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection

import pytest
import redis.exceptions as redis_errors

from workers.retry import Backoff, Health, Partition, retry_until_done

FAST = Backoff(initial=0.001, maximum=0.002)
A0, A1, B0 = ("a", 0), ("a", 1), ("b", 0)


class Recorder:
    """A PartitionControl that remembers every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, frozenset[Partition]]] = []

    def pause(self, partitions: Collection[Partition]) -> None:
        self.calls.append(("pause", frozenset(partitions)))

    def resume(self, partitions: Collection[Partition]) -> None:
        self.calls.append(("resume", frozenset(partitions)))


def failing_times(n: int, exc: BaseException) -> tuple[list[int], object]:
    attempts: list[int] = []

    async def step() -> str:
        attempts.append(1)
        if len(attempts) <= n:
            raise exc
        return "done"

    return attempts, step


async def test_retries_transient_errors_and_logs_twice(caplog: pytest.LogCaptureFixture) -> None:
    control = Recorder()
    health = Health(control=control)
    attempts, step = failing_times(5, redis_errors.ConnectionError("refused"))
    log = logging.getLogger("test.retry")
    with caplog.at_level(logging.INFO, logger="test.retry"):
        result = await retry_until_done(
            step, what="redis sink", log=log, health=health, backoff=FAST,  # type: ignore[arg-type]
            partitions={A0, A1},
        )  # fmt: skip
    assert result == "done" and len(attempts) == 6
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0].startswith("redis sink failing") and "a/0, a/1" in lines[0]
    assert lines[1].startswith("redis sink recovered after 6 attempts")
    assert control.calls == [("pause", frozenset({A0, A1})), ("resume", frozenset({A0, A1}))]
    assert not health.degraded and not health.paused_partitions


async def test_health_is_degraded_while_failing() -> None:
    health = Health(control=Recorder())
    gate, third_attempt = asyncio.Event(), asyncio.Event()
    seen: list[bool] = []

    async def step() -> None:
        seen.append(health.degraded)
        if len(seen) == 3:
            third_attempt.set()
        if not gate.is_set():
            raise ConnectionRefusedError(111, "refused")

    task = asyncio.create_task(
        retry_until_done(
            step,
            what="postgres sink",
            log=logging.getLogger("t"),
            health=health,
            backoff=FAST,
            partitions={B0},
        )
    )
    await third_attempt.wait()
    assert health.degraded and health.failing["postgres sink"].startswith("ConnectionRefused")
    assert health.paused_partitions == {B0}
    gate.set()
    await task
    assert not health.degraded and seen[0] is False and seen[-1] is True


@pytest.mark.parametrize("exc", [KeyError("bug"), redis_errors.ResponseError("WRONGTYPE")])
async def test_defects_propagate_at_once(exc: BaseException) -> None:
    attempts, step = failing_times(100, exc)
    with pytest.raises(type(exc)):
        await retry_until_done(step, what="x", log=logging.getLogger("t"), backoff=FAST)  # type: ignore[arg-type]
    assert len(attempts) == 1


async def test_a_defect_after_transient_failures_clears_the_failing_state() -> None:
    health = Health(control=Recorder())
    errors = [ConnectionResetError(104, "reset"), ValueError("bug")]

    async def step() -> None:
        raise errors.pop(0)

    with pytest.raises(ValueError):
        await retry_until_done(
            step,
            what="x",
            log=logging.getLogger("t"),
            health=health,
            backoff=FAST,
            partitions={A0},
        )
    assert not health.degraded and not health.paused_partitions


async def test_cancellation_clears_the_failing_state() -> None:
    health = Health(control=Recorder())
    failed = asyncio.Event()

    async def step() -> None:
        failed.set()
        raise TimeoutError()

    task = asyncio.create_task(
        retry_until_done(
            step,
            what="x",
            log=logging.getLogger("t"),
            health=health,
            backoff=Backoff(initial=0.05, maximum=0.05),
            partitions={A0},
        )
    )
    await failed.wait()
    assert health.degraded
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not health.degraded and not health.paused_partitions


def test_a_partition_held_by_two_failing_steps_resumes_when_both_recovered() -> None:
    control = Recorder()
    health = Health(control=control)
    assert health.mark_failing("redis sink", "down", {A0, A1}) == {A0, A1}
    assert health.mark_failing("postgres sink", "down", {A1, B0}) == {B0}
    assert health.paused_partitions == {A0, A1, B0}
    assert health.mark_recovered("redis sink") == {A0}
    assert health.paused_partitions == {A1, B0}
    assert health.mark_recovered("postgres sink") == {A1, B0}
    assert control.calls == [
        ("pause", frozenset({A0, A1})), ("pause", frozenset({B0})),
        ("resume", frozenset({A0})), ("resume", frozenset({A1, B0})),
    ]  # fmt: skip


def test_backoff_is_capped_jittered_and_never_zero() -> None:
    backoff = Backoff(initial=0.1, maximum=10.0)
    for attempt in range(200):
        ceiling = min(10.0, 0.1 * 2**attempt)
        for _ in range(5):
            assert ceiling / 2 <= backoff.delay(attempt) <= ceiling
    assert len({backoff.delay(10) for _ in range(20)}) > 1


def test_the_worker_reports_paused_partitions_without_faust_dropping_records() -> None:
    """Faust's own pause_partitions drops records it already fetched for the partition (no
    seek back), which loses them; the worker's control therefore only records the pause
    (Health.paused_partitions) and never calls it."""
    from workers.app import _ConsumerPauser

    class FakeConsumer:
        def pause_partitions(self, tps: object) -> None:
            raise AssertionError("Faust pause would drop fetched records")

        def resume_partitions(self, tps: object) -> None:
            raise AssertionError("nothing to resume")

    consumer = FakeConsumer()
    health = Health(control=_ConsumerPauser(lambda: consumer))
    health.mark_failing("redis sink", "down", {A0, A1})
    assert health.paused_partitions == {A0, A1} and health.degraded
    health.mark_recovered("redis sink")
    assert not health.paused_partitions and not health.degraded
