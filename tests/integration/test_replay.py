"""`seatflow replay` on the real services: shadow, swap under live load, resume, --from."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.structs import TopicPartition

from tests.integration.conftest import SettingsFactory
from tests.integration.harness import (
    SEATFLOW,
    WorkerProcess,
    produce,
    read_models,
    run_cli,
    settings_env,
    wait_drained,
)
from tests.integration.replay_support import (
    delete_records,
    end_offsets,
    mark_old_copy,
    read_model_indexes,
    read_postgres,
    read_redis,
    replay,
    schema_exists,
    shadow_models,
    summary_of,
    trickle,
    wait_generation_drained,
)
from workers.generation import old_prefix, old_schema
from workers.loadgen.scenario import SEATS_GENERATED, ScenarioShape, UpstreamRecord, scenario
from workers.replay.shadow import checkpoint_topic
from workers.settings import Settings
from workers.topic_catalog import load_catalog
from workers.verify.reference import fold
from workers.verify.topics import fold_topics, read_sources

pytestmark = pytest.mark.integration


def assert_same(actual: object, expected: object, what: str) -> None:
    differences = actual.differences(expected)  # type: ignore[attr-defined]
    assert not differences, f"{what} differs:\n" + "\n".join(differences)


async def test_replay_under_live_load_swaps_atomically_and_hands_over(
    settings_factory: SettingsFactory, tmp_path: Path
) -> None:
    settings = settings_factory()
    assert run_cli(settings, "topics", "apply").returncode == 0
    records = scenario(seed=21, shape=ScenarioShape(concert_events=6, reservations=5_000))
    events = [r.key.decode() for r in records if r.topic == SEATS_GENERATED]
    half = len(records) // 2
    await produce(settings, records[:half])
    worker = WorkerProcess(settings, tmp_path)
    worker.start()
    try:
        await wait_drained(settings, worker, within=120)
        await mark_old_copy(settings, events[0])

        # Readers poll both stores through the swap; events keep flowing meanwhile.
        stop = asyncio.Event()
        marker = checkpoint_topic(2)
        readers = [
            asyncio.create_task(read_postgres(settings, marker, stop)),
            asyncio.create_task(read_redis(settings, marker, events, stop)),
        ]
        replayed = asyncio.Event()
        flowing = asyncio.create_task(
            trickle(settings, records[half:], size=50, pause_s=0.25, until=replayed)
        )
        await asyncio.sleep(1)
        started = time.monotonic()
        lines = await replay(settings, "--batch-events", "3000")
        replay_s = time.monotonic() - started
        replayed.set()
        summary = summary_of(lines)
        assert summary["swapped"] and summary["target_generation"] == 2
        events = [line["message"] for line in lines if line["type"] == "event"]
        built = [i for i, m in enumerate(events) if "secondary indexes in" in m]
        fenced = [i for i, m in enumerate(events) if m.startswith("fencing generation")]
        # the deferred indexes were built, and before the live copy was frozen
        assert len(built) == 1 and len(fenced) == 1 and built[0] < fenced[0], events
        assert summary["phases"]["indexes"] > 0
        during = await flowing
        await asyncio.sleep(1)
        stop.set()
        pg_reads, redis_reads = await asyncio.gather(*readers)

        # The worker met the fence, re-executed itself and continues as generation 2.
        await wait_generation_drained(settings, 2, worker, within=120)
        assert worker.alive() and worker.starts == 1
        assert "restarting this worker on the live generation" in worker.log_tail(2000)
        expected = await fold_topics(settings, load_catalog(settings))
        assert_same(await read_models(settings), expected, "the live copy after the swap")
    finally:
        worker.stop()

    assert during < len(records) - half, "the producer ran out before the replay ended"
    for name, reads in (("postgres", pg_reads), ("redis", redis_reads)):
        assert not reads.violations, f"{name} reader saw a mix: {reads.violations[:5]}"
        assert reads.copies() == [False, True], f"{name} reader: {reads.copies()}"
    assert not pg_reads.errors, pg_reads.errors[:3]

    # The old copy is kept (and differs) until --drop-old.
    assert await schema_exists(settings, old_schema(settings.pg_schema))
    # The indexes the shadow deferred while it filled were built before the swap.
    live_indexes = await read_model_indexes(settings, settings.pg_schema)
    assert live_indexes == await read_model_indexes(settings, old_schema(settings.pg_schema))
    assert "reservations_customer_id_idx" in live_indexes
    check = run_cli(settings, "verify", "--copy", "live", "--against", "old")
    assert check.returncode == 1, check.stdout + check.stderr
    check = run_cli(settings, "verify", "--copy", "live", "--against", "topics")
    assert check.returncode == 0, check.stdout + check.stderr
    dropped = run_cli(settings, "replay", "--drop-old")
    assert dropped.returncode == 0, dropped.stderr
    assert not await schema_exists(settings, old_schema(settings.pg_schema))
    assert not await _keys(settings, old_prefix(settings.redis_prefix))
    print(f"replay under load: {summary['events_read']} events in {replay_s:.1f}s")


async def _in_topics(
    settings: Settings, *, seed: int, concert_events: int, reservations: int
) -> list[UpstreamRecord]:
    """A scenario produced into the source topics (declared first)."""
    assert run_cli(settings, "topics", "apply").returncode == 0
    shape = ScenarioShape(concert_events=concert_events, reservations=reservations)
    records = scenario(seed=seed, shape=shape)
    await produce(settings, records)
    return records


async def _replay_process(
    settings: Settings, *args: str, **popen: Any
) -> asyncio.subprocess.Process:
    """`seatflow replay --json ARGS` started, its JSON lines on a pipe."""
    return await asyncio.create_subprocess_exec(
        SEATFLOW, "replay", "--json", *args, env=settings_env(settings),
        stdout=asyncio.subprocess.PIPE, **popen,
    )  # fmt: skip


async def _replay_killed_at(settings: Settings, args: Sequence[str], events: int) -> None:
    """`seatflow replay --json ARGS` kill -9'd (with its decoding processes) once its
    progress reaches `events`."""
    proc = await _replay_process(
        settings, *args, stderr=asyncio.subprocess.DEVNULL, start_new_session=True
    )
    assert proc.stdout is not None
    seen = 0
    async for raw in proc.stdout:
        line = orjson.loads(raw)
        if line["type"] == "progress":
            seen = line["events"]
            if seen >= events:
                os.killpg(proc.pid, signal.SIGKILL)  # kill -9, mid-run
                break
    await asyncio.wait_for(proc.wait(), 30)
    assert proc.returncode == -signal.SIGKILL, f"replay ended before it was killed ({seen})"


async def test_replay_killed_halfway_resumes_from_its_checkpoints(
    settings_factory: SettingsFactory,
) -> None:
    settings = settings_factory()
    records = await _in_topics(settings, seed=8, concert_events=6, reservations=6_000)
    total = len(records)

    # a decoding process too (the default only for large replays): kill -9 takes it along
    args = ("--batch-events", "1000", "--decode-processes", "1")
    await _replay_killed_at(settings, args, total // 2)

    summary = summary_of(await replay(settings, *args))
    assert summary["resumed"] and summary["resumed_from_batch"] > 0
    assert summary["events_read"] < total * 0.7, (summary["events_read"], total)
    assert summary["swapped"]
    expected = await fold_topics(settings, load_catalog(settings))
    assert_same(await read_models(settings), expected, "the copy built in two runs")


def _decoding_processes(parent: int) -> list[int]:
    """The pool's processes among `parent`'s children (not multiprocessing's tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == parent and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


async def test_a_decoding_process_killed_stops_the_replay_clearly_and_it_resumes(
    settings_factory: SettingsFactory,
) -> None:
    settings = settings_factory()
    records = await _in_topics(settings, seed=12, concert_events=4, reservations=5_000)

    args = ("--no-swap", "--batch-events", "1000", "--decode-processes", "2")
    proc = await _replay_process(settings, *args, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    killed = None
    lines = []
    async for raw in proc.stdout:
        lines.append(orjson.loads(raw))
        if lines[-1]["type"] == "progress" and killed is None:
            if lines[-1]["events"] < len(records) // 2:
                continue
            killed = _decoding_processes(proc.pid)[0]
            os.kill(killed, signal.SIGKILL)  # as the kernel's OOM killer would
    err = (await asyncio.wait_for(proc.stderr.read(), 60)).decode()
    await asyncio.wait_for(proc.wait(), 60)
    assert killed is not None, lines
    assert proc.returncode == 1, (proc.returncode, err[-2000:])
    assert "seatflow replay: a decoding process ended abruptly" in err, err[-2000:]
    assert "Traceback" not in err, err[-2000:]
    assert lines[-1]["type"] == "error", lines[-1]
    assert not [line for line in lines if line["type"] == "summary"]

    summary = summary_of(await replay(settings, *args))
    assert summary["resumed"] and summary["events_read"] < len(records), summary
    check = run_cli(settings, "verify", "--copy", "shadow", "--against", "topics")
    assert check.returncode == 0, check.stdout + check.stderr


async def test_records_deleted_before_a_replay_resumes_stop_it_with_a_way_out(
    settings_factory: SettingsFactory,
) -> None:
    """Retention deleting records a stopped replay still has to read: the resumed run
    refuses (exit 2, one line: what is gone, how to start over) instead of building a copy
    over the gap; `--abort` and a new replay then build the fold of what the log holds."""
    settings = settings_factory()
    assert run_cli(settings, "topics", "apply").returncode == 0
    records = scenario(seed=14, shape=ScenarioShape(concert_events=4, reservations=5_000))
    cut = len(records) * 2 // 3
    await produce(settings, records[:cut])

    args = ("--no-swap", "--batch-events", "1000", "--decode-processes", "1")
    await _replay_killed_at(settings, args, cut // 2)

    # retention takes everything produced so far
    topics = {spec.logical: spec.name for spec in load_catalog(settings).sources()}
    ends = await end_offsets(settings)
    await delete_records(
        settings,
        {TopicPartition(topics[logical], p): end for (logical, p), end in ends.items() if end},
    )

    again = await _replay_process(settings, *args, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(again.communicate(), 120)
    text = err.decode()
    assert again.returncode == 2, (again.returncode, text[-2000:])
    assert "are gone (the log now starts at" in text and "seatflow replay --abort" in text
    assert "Traceback" not in text, text[-2000:]
    assert orjson.loads(out.splitlines()[-1])["type"] == "error"

    await replay(settings, "--abort")
    await produce(settings, records[cut:])
    summary = summary_of(await replay(settings, *args))
    assert summary["events_read"] == len(records) - cut, summary
    check = run_cli(settings, "verify", "--copy", "shadow", "--against", "topics")
    assert check.returncode == 0, check.stdout + check.stderr


async def test_replay_from_a_datetime_replays_exactly_the_later_records(
    settings_factory: SettingsFactory,
) -> None:
    settings = settings_factory()
    assert run_cli(settings, "topics", "apply").returncode == 0
    records = scenario(seed=4, shape=ScenarioShape(concert_events=4, reservations=3_000))
    first, second = records[: len(records) // 2], records[len(records) // 2 :]
    await produce(settings, first)
    boundary = await end_offsets(settings)
    await asyncio.sleep(1.5)
    since = datetime.now(UTC)
    await asyncio.sleep(1.5)
    await produce(settings, second)

    plan = await replay(settings, "--dry-run", "--from", since.isoformat())
    assert plan[0]["type"] == "plan" and plan[0]["events"] == len(second)
    summary = summary_of(await replay(settings, "--from", since.isoformat(), "--no-swap"))
    assert summary["events_read"] == len(second) and not summary["swapped"]

    later = [
        r
        for r in await read_sources(settings, load_catalog(settings))
        if r.offset >= boundary[(r.topic, r.partition)]
    ]
    assert len(later) == len(second)
    assert_same(await shadow_models(settings), fold(later), "the shadow built --from")
    check = run_cli(settings, "verify", "--copy", "shadow", "--against", "topics")
    assert check.returncode == 0, check.stdout + check.stderr


async def _keys(settings: object, prefix: str) -> list[str]:
    import redis.asyncio as aioredis

    client = aioredis.from_url(settings.redis_url.get_secret_value())  # type: ignore[attr-defined]
    try:
        return [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
    finally:
        await client.aclose()
