"""The decoding processes read their ranges from Kafka themselves: exactly the records of
each range, decoded exactly as this process decodes what its own reader reads."""

from __future__ import annotations

import asyncio
import itertools
import random
import signal
import sys
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from tests.integration.conftest import SettingsFactory
from tests.integration.harness import produce, run_cli, settings_env
from tests.integration.replay_support import delete_records
from workers.kafka_clients import client_kwargs
from workers.loadgen.scenario import ScenarioShape, scenario
from workers.replay.decoders import Decoders, RangeReader
from workers.replay.fold import decode_chunk_wire, plain
from workers.replay.plan import SourcePartition
from workers.replay.shadow import Ranges
from workers.replay.source import RecordsGone, SourceReader
from workers.replay.spool import take
from workers.settings import Settings
from workers.topic_catalog import load_catalog
from workers.verify.topics import partitions_of

pytestmark = pytest.mark.integration


async def _sources(settings: Settings) -> list[SourcePartition]:
    logical = {spec.name: spec.logical for spec in load_catalog(settings).sources()}
    tps = await partitions_of(settings, list(logical))
    return sorted(SourcePartition(logical[tp.topic], tp.partition, tp.topic) for tp in tps)


async def _loaded(
    settings: Settings,
) -> tuple[list[SourcePartition], Ranges, dict[SourcePartition, list[ConsumerRecord]]]:
    """A scenario and one undecodable record in the source topics; every partition's
    records as this process's reader reads them, and the ranges [0, end)."""
    assert run_cli(settings, "topics", "apply").returncode == 0
    await produce(
        settings, scenario(seed=11, shape=ScenarioShape(concert_events=2, reservations=900))
    )
    created = load_catalog(settings).get("reservation-created").name
    producer = AIOKafkaProducer(**client_kwargs(settings))
    await producer.start()
    try:
        await producer.send_and_wait(created, b"\xff not json", partition=1)
    finally:
        await producer.stop()
    sources = await _sources(settings)
    reader = SourceReader(settings, sources)
    await reader.start()
    try:
        ends = await reader.end_offsets()
        ranges = {sp: (0, ends[sp]) for sp in sources}
        everything = await reader.read(ranges)
    finally:
        await reader.stop()
    return sources, ranges, everything


async def test_decoding_processes_read_and_decode_what_this_process_would(
    settings_factory: SettingsFactory, tmp_path: Path
) -> None:
    settings = settings_factory()
    _, ranges, everything = await _loaded(settings)
    expected = decode_chunk_wire(
        [plain(sp.logical, r) for sp in sorted(everything) for r in everything[sp]]
    )
    assert expected[1] == 1  # the undecodable record is counted as rejected, not lost

    pool = Decoders(settings, 2, spool=tmp_path)
    try:
        handoffs = [await chunk for _, chunk in pool.submit(ranges)]
        # each chunk came back as a file of the pool's own directory, removed once taken
        assert all(isinstance(h, str) and Path(h).parent == pool.spool for h in handoffs)
        chunks = [take(h) for h in handoffs]
        assert list(pool.spool.iterdir()) == []
    finally:
        pool.close()
    assert not pool.spool.exists()
    assert len(chunks) > 2
    assert sum(c[0] for c in chunks) == expected[0] == sum(hi for _, hi in ranges.values())
    assert sum(c[1] for c in chunks) == 1
    assert [wire for c in chunks for wire in c[2]] == expected[2]


async def test_a_range_reader_reads_exactly_each_range_in_any_order(
    settings_factory: SettingsFactory,
) -> None:
    settings = settings_factory()
    sources, ranges, everything = await _loaded(settings)
    busy = [sp for sp in sources if ranges[sp][1] >= 40]
    rng = random.Random(3)
    asks = []
    for sp in busy:
        end = ranges[sp][1]
        cuts = sorted({0, end, *rng.sample(range(1, end), 5)})
        asks += [(sp, lo, hi) for lo, hi in itertools.pairwise(cuts)]
        asks.append((sp, 0, end))  # the whole partition again, after its pieces
    rng.shuffle(asks)
    reader = RangeReader(settings)
    try:
        for sp, lo, hi in asks:
            got = await reader.read((sp.logical, sp.topic, sp.partition, lo, hi))
            want = [plain(sp.logical, r) for r in everything[sp][lo:hi]]
            assert got == want, (sp.label, lo, hi)
    finally:
        assert reader.consumer is not None
        await asyncio.wait_for(reader.consumer.stop(), 30)


async def test_records_deleted_by_retention_make_every_reader_refuse(
    settings_factory: SettingsFactory,
) -> None:
    """A range whose first records are gone is refused by the reader of this process, by
    a range reader and through the pool, with what is gone and where the log starts now,
    not read short from wherever the log starts (aiokafka's default offset reset)."""
    settings = settings_factory()
    sources, ranges, everything = await _loaded(settings)
    sp = max(sources, key=lambda s: ranges[s][1])
    end = ranges[sp][1]
    assert end > 40
    await delete_records(settings, {sp.tp: 20})
    gone = rf"{sp.label}: the records from offset 5 on are gone \(the log now starts at 20\)"

    reader = SourceReader(settings, [sp])
    await reader.start()
    try:
        with pytest.raises(RecordsGone, match=gone):
            await asyncio.wait_for(reader.read({sp: (5, end)}), 60)
    finally:
        await reader.stop()

    ranges_reader = RangeReader(settings)
    try:
        with pytest.raises(RecordsGone, match=gone):
            await asyncio.wait_for(
                ranges_reader.read((sp.logical, sp.topic, sp.partition, 5, end)), 60
            )
        # what is still there reads as before
        got = await ranges_reader.read((sp.logical, sp.topic, sp.partition, 20, end))
        assert got == [plain(sp.logical, r) for r in everything[sp][20:end]]
    finally:
        assert ranges_reader.consumer is not None
        await asyncio.wait_for(ranges_reader.consumer.stop(), 30)

    pool = Decoders(settings, 1)
    try:
        (_, first), *_ = pool.submit({sp: (5, end)})
        with pytest.raises(RecordsGone, match=gone):
            await asyncio.wait_for(first, 60)
    finally:
        pool.close()


_POOL_THEN_WAIT = """
import os, sys, time
from workers.replay.decoders import Decoders
from workers.settings import load_settings
pool = Decoders(load_settings(), 2)
pids = {pool.pool.submit(os.getpid).result() for _ in range(8)}
with open(sys.argv[1] + ".part", "w") as out:
    out.write(" ".join(map(str, sorted(pids))))
os.rename(sys.argv[1] + ".part", sys.argv[1])
time.sleep(120)
"""


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _read_within(path: Path, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} was not written"
        time.sleep(0.1)
    return path.read_text()


def _gone_within(pids: list[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while any(_running(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "term"])
async def test_the_decoding_processes_end_with_the_replay_process_whatever_ends_it(
    settings_factory: SettingsFactory, signum: int, tmp_path: Path
) -> None:
    """Killed alone (its pid, not its process group), the replay process takes its
    decoding processes along; they used to stay, idle, holding memory and connections."""
    settings = settings_factory()
    written = tmp_path / "decoders"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _POOL_THEN_WAIT, str(written), env=settings_env(settings)
    )
    try:
        line = await asyncio.to_thread(_read_within, written, 60)
        decoders = [int(pid) for pid in line.split()]
        assert decoders and all(_running(pid) for pid in decoders)
        proc.send_signal(signum)
        await asyncio.wait_for(proc.wait(), 30)
        assert await asyncio.to_thread(_gone_within, decoders, 10), decoders
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
