"""Dead letters that a newer decoder accepts: the ordering rule, then redrive after the fix.

The story: the workers first ran a decoder that followed upstream's contract file, where
reservation-created's customerId is a UUID; the producers send free strings ("customer-7",
e-mails), so most creations were dead-lettered while their expiries and orders (other
topics, same seats and reservations) were applied. Then the fixed decoder is deployed and
`seatflow dlq redrive` sends the dead letters back.

Checked: before the redrive the read models equal the fold of the events that were NOT
dead-lettered (the documented rule: later events apply normally, the rejected one is
simply absent); after it they equal the fold of all events (as if nothing had been
rejected); each redriven creation is one fact in the seat table, named after its original
record; and a second redrive changes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from tests.integration.conftest import SettingsFactory
from tests.integration.dlq_support import (
    dead_letters,
    end_offsets,
    fatal_lines,
    read_topic,
    seat_states,
)
from tests.integration.harness import WorkerProcess, produce, read_models, run_cli, wait_drained
from tests.integration.private_kafka import PrivateKafka
from workers import kafka_reading
from workers.commands import dlq
from workers.deadletter import DeadLetter, dead_letter_record
from workers.decoding import SCHEMAS_DIR_ENV, schemas_dir
from workers.dlq_query import Selection
from workers.loadgen.scenario import ScenarioShape, UpstreamRecord, scenario
from workers.records import RawRecord
from workers.redrive import REDRIVE_ORIGIN
from workers.settings import Settings
from workers.topic_catalog import TopicCatalog, load_catalog
from workers.verify.reference import fold
from workers.verify.topics import fold_topics, read_sources

pytestmark = pytest.mark.integration

CREATED = "reservation-created"
EXPIRED = "reservation-expired"


def old_decoder_schemas(directory: Path) -> Path:
    """The schemas as the contract file has them: customerId must be a UUID."""
    shutil.copytree(schemas_dir(), directory)
    for version in ("v1", "v2"):
        path = directory / CREATED / f"{version}.json"
        schema = json.loads(path.read_text())
        schema["properties"]["customerId"] = {"$ref": "#/definitions/uuid"}
        path.write_text(json.dumps(schema))
    return directory


def assert_same(actual: object, expected: object, when: str) -> None:
    differences = actual.differences(expected)  # type: ignore[attr-defined]
    assert not differences, f"{when}:\n" + "\n".join(differences[:20])


async def redriven_fact_counts(settings: Settings, origins: set[tuple[int, int]]) -> Counter[str]:
    """How many facts of the seat table name each origin, or any redriven copy."""
    copies = {
        (partition, offset)
        for partition, offset, _k, _v, headers in await read_topic(
            settings, load_catalog(settings).get(CREATED).name
        )
        if any(name == REDRIVE_ORIGIN for name, _ in headers)
    }
    wanted = {f"{CREATED}/{p}/{o}/0": "origin" for p, o in origins}
    wanted |= {f"{CREATED}/{p}/{o}/0": "copy" for p, o in copies}
    counts: Counter[str] = Counter()
    for state in (await seat_states(settings)).values():
        for _, fact in state.facts:
            if fact.fact_id in wanted:
                counts[wanted[fact.fact_id] + ":" + fact.fact_id] += 1
    return counts


async def test_redrive_after_a_decoder_fix_applies_each_dead_letter_once(
    settings_factory: SettingsFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_factory()
    catalog = load_catalog(settings)
    assert run_cli(settings, "topics", "apply").returncode == 0
    shape = ScenarioShape(concert_events=2, seats_per_event=120, reservations=400)
    await produce(settings, scenario(seed=9, shape=shape))

    # ---- the old decoder: creations with free-string customer ids are dead-lettered
    monkeypatch.setenv(SCHEMAS_DIR_ENV, str(old_decoder_schemas(tmp_path / "old-schemas")))
    old = WorkerProcess(settings, tmp_path, name="old-decoder")
    old.start()
    monkeypatch.delenv(SCHEMAS_DIR_ENV)
    try:
        await wait_drained(settings, old, within=180)
    finally:
        old.stop()
    assert not fatal_lines(old)
    letters = await dead_letters(settings)
    assert letters and {d.dlq_topic for d in letters} == {catalog.dead_letter_for(CREATED).name}
    assert all("$.customerId: must be a UUID" in d.reason for d in letters)
    origins = {(d.origin_partition, d.origin_offset) for d in letters}
    assert len(origins) == len(letters)

    # Ordering rule: the read models are the fold of the events that were not rejected.
    sources = await read_sources(settings, catalog)
    applied = [
        r for r in sources if not (r.topic == CREATED and (r.partition, r.offset) in origins)
    ]
    assert len(applied) == len(sources) - len(letters)
    before = await read_models(settings)
    assert_same(before, fold(applied), "before the redrive")
    # ... and it is not vacuous: orders and expiries of rejected creations were applied.
    rejected = {orjson.loads(d.value or b"{}")["reservationId"].lower() for d in letters}
    ordered = {str(row[0]) for row in before.tables["order_items"].values()}  # reservation_id
    assert rejected & ordered, "no order of a rejected reservation was applied"
    assert not rejected & {str(k[0]) for k in before.tables["reservations"]}

    # ---- the fixed decoder is deployed; redrive
    fixed = WorkerProcess(settings, tmp_path, name="fixed-decoder")
    fixed.start()
    try:
        source_names = [s.name for s in catalog.sources()]
        ends = await end_offsets(settings, source_names)
        dry = run_cli(settings, "dlq", "redrive", "--dry-run")
        assert dry.returncode == 0, dry.stdout + dry.stderr
        assert f"{len(letters)} selected: {len(letters)} would send" in dry.stdout
        assert await end_offsets(settings, source_names) == ends

        first = run_cli(settings, "dlq", "redrive", "--topic", CREATED, "--reason",
                        "schema_violation", "--since", "1h")  # fmt: skip
        assert first.returncode == 0, first.stdout + first.stderr
        assert f"{len(letters)} selected: {len(letters)} sent" in first.stdout
        await wait_drained(settings, fixed, within=180)
        after_first = await read_models(settings)
        assert_same(after_first, await fold_topics(settings, catalog), "after the redrive")
        assert rejected <= {str(k[0]) for k in after_first.tables["reservations"]}
        counts = await redriven_fact_counts(settings, origins)
        assert {k: v for k, v in counts.items() if k.startswith("copy:")} == {}
        assert sorted(counts.values()) == [1] * len(origins), counts.most_common(3)

        second = run_cli(settings, "dlq", "redrive", "--topic", CREATED)
        assert second.returncode == 0, second.stdout + second.stderr
        await wait_drained(settings, fixed, within=180)
        assert_same(await read_models(settings), after_first, "after the second redrive")
        assert await redriven_fact_counts(settings, origins) == counts
        assert len(await dead_letters(settings)) == len(letters)  # nothing rejected again
        assert fixed.alive()
    finally:
        fixed.stop()
    assert fixed.starts == 1 and not fatal_lines(fixed)


def some_letters(
    catalog: TopicCatalog, *, created: int, expired: int
) -> tuple[list[UpstreamRecord], list[DeadLetter]]:
    """Upstream records of the two reservation topics and a dead letter for each."""
    records = scenario(seed=4, shape=ScenarioShape(reservations=40))
    chosen = [r for r in records if r.topic == CREATED][:created]
    chosen += [r for r in records if r.topic == EXPIRED][:expired]
    letters = [
        DeadLetter(
            RawRecord(
                catalog.get(r.topic).name, i % 4, 100 + i, 1_700_000_000_000 + i, r.key, r.value
            ),
            "DecodeError:schema_violation",
            "$.customerId: must be a UUID",
        )
        for i, r in enumerate(chosen)
    ]
    return chosen, letters


async def test_redrive_streams_in_chunks_in_position_order_up_to_the_ends_seen_at_start(
    settings_factory: SettingsFactory, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """A redrive of many letters holds `REDRIVE_CHUNK` at a time: here 3, so 11 letters
    in two dead-letter topics go out as 3+3+3+2, in (topic, partition, offset) order
    whatever the order they were written in. Each chunk also makes a new dead letter
    appear (as a worker rejecting a redriven record again would) in the topic read last:
    the run must not pick those up, as the end offsets are fixed before anything is
    sent."""
    settings = settings_factory()
    catalog = load_catalog(settings)
    assert run_cli(settings, "topics", "apply").returncode == 0
    chosen, letters = some_letters(catalog, created=6, expired=5)
    dlq_of = {t: catalog.dead_letter_for(t).name for t in (CREATED, EXPIRED)}
    late = DeadLetter(
        RawRecord(catalog.get(EXPIRED).name, 0, 999, 1_700_000_000_000, b"k", b"{}"),
        "DecodeError", "late",
    )  # fmt: skip
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for letter, record in reversed(list(zip(letters, chosen, strict=True))):
            key, value, headers = dead_letter_record(letter, group="old")
            await producer.send_and_wait(dlq_of[record.topic], value, key=key, headers=headers)
        chunks: list[int] = []
        real_send = dlq.send_redrives

        async def send_and_reject_again(sender: Any, plans: Any) -> list[str | None]:
            chunks.append(len(plans))
            key, value, headers = dead_letter_record(late, group="new")
            await producer.send_and_wait(dlq_of[EXPIRED], value, key=key, headers=headers)
            return await real_send(sender, plans)

        monkeypatch.setattr(dlq, "REDRIVE_CHUNK", 3)
        monkeypatch.setattr(dlq, "send_redrives", send_and_reject_again)
        selection = Selection(topics=frozenset(dlq_of.values()))
        args = argparse.Namespace(dry_run=False, force=False)
        code = await dlq._redrive(args, settings, catalog, selection)
    finally:
        await producer.stop()
    out = capsys.readouterr().out.splitlines()
    assert code == dlq.EXIT_OK, out
    assert chunks == [3, 3, 3, 2]
    assert out[-1].startswith("11 selected: 11 sent; redrive id "), out[-1]
    positions = [line.split(" -> ")[0] for line in out[:-1]]
    # reservation-created's topic first, although its letters were written last
    expected = [f"{dlq_of[CREATED]}/0@{o}" for o in range(6)]
    expected += [f"{dlq_of[EXPIRED]}/0@{o}" for o in range(5)]
    assert positions == expected
    for topic, count in ((CREATED, 6), (EXPIRED, 5)):
        copies = await read_topic(settings, catalog.get(topic).name)
        sent = sorted(dict(headers)[REDRIVE_ORIGIN].decode() for *_, headers in copies)
        mine = [x for x in letters if x.record.topic == catalog.get(topic).name]
        assert len(mine) == count
        assert sent == sorted(f"{topic}/{x.record.partition}/{x.record.offset}" for x in mine)
    # The late letters went to the topic read last (two of them before it was read at
    # all): they are there, and were not selected.
    assert len(await read_topic(settings, dlq_of[EXPIRED])) == 5 + len(chunks)


async def test_a_redrive_that_loses_kafka_midway_stops_and_says_how_far_it_got(
    plain_kafka: PrivateKafka,
    settings_factory: SettingsFactory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    """The broker dies after two chunks of three, when the letters of the second topic are
    still to be read. The run must not wait for them for ever (aiokafka retries a dead
    broker without end): it stops once nothing has come for its stall limit, having
    printed each letter it sent, with a summary of how far it got and what to do."""
    settings = settings_factory(kafka_bootstrap=plain_kafka.bootstrap)
    catalog = load_catalog(settings)
    assert run_cli(settings, "topics", "apply").returncode == 0
    chosen, letters = some_letters(catalog, created=6, expired=2)
    producer = AIOKafkaProducer(bootstrap_servers=plain_kafka.bootstrap, acks="all")
    await producer.start()
    try:
        for letter, record in zip(letters, chosen, strict=True):
            key, value, headers = dead_letter_record(letter, group="old")
            topic = catalog.dead_letter_for(record.topic).name
            await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()
    chunks: list[int] = []
    real_send = dlq.send_redrives

    async def send_then_lose_kafka(sender: Any, plans: Any) -> list[str | None]:
        chunks.append(len(plans))
        result = await real_send(sender, plans)
        if len(chunks) == 2:
            await asyncio.to_thread(plain_kafka.stop)
        return result

    monkeypatch.setattr(dlq, "REDRIVE_CHUNK", 3)
    monkeypatch.setattr(kafka_reading, "STALL_S", 5.0)
    monkeypatch.setattr(dlq, "send_redrives", send_then_lose_kafka)
    selection = Selection(
        topics=frozenset(catalog.dead_letter_for(t).name for t in (CREATED, EXPIRED))
    )
    started = time.monotonic()
    try:
        with pytest.raises(TimeoutError, match="nothing from Kafka for 5s"):
            await dlq._redrive(
                argparse.Namespace(dry_run=False, force=False), settings, catalog, selection
            )
        assert time.monotonic() - started < 20  # the 5 s limit, not a request timeout
    finally:
        await asyncio.to_thread(plain_kafka.start)  # for the clean-up of the test's topics
    out = capsys.readouterr().out.splitlines()
    assert chunks == [3, 3]
    assert [line.split(" -> ")[0] for line in out[:-1]] == [
        f"{catalog.dead_letter_for(CREATED).name}/0@{o}" for o in range(6)
    ]
    assert all("  sent (origin " in line for line in out[:-1])
    assert out[-1].startswith("stopped after 6 selected: 6 sent; redrive id "), out[-1]
    assert "run the same command again" in out[-1]
