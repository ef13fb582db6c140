"""The Faust app: topics, the seat table and five thin agents. No business rules here.

    source topics --ingest agents--> seat-facts (by seat) --seat agent--> Redis + PostgreSQL
                       |                                      |
                       +--> <source>.dlq                      +--> seat table (changelog)

Every agent takes batches with `noack_take` and acknowledges its records only after what
they feed is durable (the seat-facts messages acked by Kafka; the table changelog and both
sinks applied). `take()` would acknowledge in a `finally` even when the body failed or was
cancelled at shutdown: that would commit records that were never applied.

Dependencies that fail are retried inside the batch (`retry_until_done`). Any other
exception is a defect with no rule to handle it: Faust's supervisor would restart the agent
*after* the batch it had taken, silently leaving it unapplied until the next rebalance, so
the process stops instead (`fatal`); restarted, it resumes at the last committed offset.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import faust

from workers.consumer import install as install_consumer
from workers.continuity import SeatFactsContinuity, SourceContinuity, StuckWatch
from workers.deadletter import DeadLetter, dead_letter_record
from workers.events import EventType
from workers.generation import GenerationChanged, reexec
from workers.ingest import ingest
from workers.kafka_clients import faust_credentials
from workers.observability.metrics import Observer
from workers.observability.monitor import instrument
from workers.observability.timing import MessageTiming, timing_headers
from workers.rebalance import current_events, finish_in_hand_before_revocation, rebalance_over
from workers.records import RawRecord
from workers.retry import Health, Partition, retry_until_done
from workers.seat_stage import apply_to_sinks, once_in_offset_order, project_partition
from workers.seat_table import SeatTable, pinned
from workers.settings import Settings
from workers.shutdown import BatchGate
from workers.sinks.connect import SinkSet
from workers.state_cache import SeatStateCache
from workers.topic_catalog import TopicCatalog

log = logging.getLogger("seatflow.app")

SEAT_FACTS = "seatflow.seat-facts"
SEATS_CHANGELOG = "{group}-seats-changelog"
RAW: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}

FATAL_EXIT_CODE = 70  # EX_SOFTWARE
STUCK_CHECK_INTERVAL_S = 5.0
STUCK_CHECKS = 2
"""A partition's hole must stay the same for this many checks (5 to 10 s, two
commit intervals at least) before it is read again (workers/continuity.py)."""
PRODUCER_MAX_REQUEST_BYTES = 8 * 1024 * 1024
"""A dead letter is its source record (up to the broker's ~1 MB) plus our headers, so it
can exceed 1 MB: the `.dlq` topics allow 8 MiB (topics/catalog.toml), and so must we."""


def fatal(what: str, exc: BaseException) -> None:
    """Stop the process at once: nothing of the batch in hand was acknowledged."""
    log.critical("%s failed with an error no rule covers; stopping the worker", what,
                 exc_info=exc)  # fmt: skip
    logging.shutdown()
    sys.stderr.flush()
    os._exit(FATAL_EXIT_CODE)


Outgoing = tuple[str, int | None, bytes | None, bytes | None, Sequence[tuple[str, bytes]] | None]


def create_app(
    settings: Settings, catalog: TopicCatalog, sinks: SinkSet, observer: Observer | None = None
) -> faust.App:
    facts_spec = catalog.get(SEAT_FACTS)
    partitions = facts_spec.partitions
    health = Health(control=_ConsumerPauser(lambda: app.consumer))
    metrics = observer or Observer(settings.consumer_group, [s.logical for s in catalog.sources()])
    gate = BatchGate()  # closed on SIGTERM: batches in hand finish, no new ones start
    app = faust.App(
        settings.consumer_group,
        broker=f"kafka://{settings.kafka_bootstrap}",
        broker_credentials=faust_credentials(settings),
        # Shutdown drains through `gate` first (workers/shutdown.py); Faust's own wait for
        # every delivered message to be acked would wait for parked batches forever. Before
        # a rebalance the wait happens in workers/rebalance.py, ahead of table revocation.
        stream_wait_empty=False,
        producer_max_request_size=PRODUCER_MAX_REQUEST_BYTES,
        store="rocksdb://" if settings.store == "rocksdb" else "memory://",
        datadir=str(settings.data_dir),
        topic_partitions=partitions,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger_ms=5,
        broker_max_poll_records=settings.batch_max_events,
        stream_buffer_maxsize=max(4096, settings.batch_max_events * 2),
        table_standby_replicas=settings.standby_replicas,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 3),
        web_enabled=False,
        autodiscover=False,
    )
    install_consumer(app)  # before anything creates the consumer
    seat_facts = app.topic(facts_spec.name, partitions=partitions, **RAW)
    changelog = app.topic(
        catalog.get(SEATS_CHANGELOG).name, partitions=partitions, compacting=True, deleting=False,
        internal=True, **RAW,
    )  # fmt: skip
    table = app.Table(
        "seats", partitions=partitions, changelog_topic=changelog, key_type=bytes,
        value_type=bytes,
    )  # fmt: skip
    # Faust derives a table's store serializers from its types ("json" unless a Model), not
    # from a schema: set them before the store exists, or RocksDB hands back parsed JSON and
    # the memory store recovers keys of another type than it was written with.
    table.key_serializer = table.value_serializer = "raw"
    within = settings.batch_max_ms / 1000

    seat_table = SeatTable(
        table, changelog.get_topic_name(), lambda: app.producer._ensure_producer()
    )

    async def produce(records: Sequence[Outgoing]) -> None:
        futures = [await app.producer.send(t, k, v, p, None, h) for t, p, k, v, h in records]
        await asyncio.gather(*futures)

    def dead_letter_records(topic: str, letters: Sequence[DeadLetter]) -> list[Outgoing]:
        group = settings.consumer_group
        out: list[Outgoing] = []
        for letter in letters:
            key, value, headers = dead_letter_record(letter, group=group)
            out.append((topic, None, key, value, headers))
        return out

    # ---------------------------------------------------------------- ingest agents
    async def ingest_batch(events: Sequence[Any], event_type: EventType, dlq: str) -> None:
        started = time.perf_counter()
        records = [RawRecord.from_message(e.message) for e in events]
        result = ingest(records, event_type, partitions)
        timing = timing_headers(records)  # decode time and oldest record timestamp: latencies
        out: list[Outgoing] = [(facts_spec.name, p, None, v, timing) for p, v in result.messages]
        out += dead_letter_records(dlq, result.dead_letters)
        for d in result.dead_letters:
            r = d.record
            log.warning("dead-lettered %s/%d@%d: %s", r.topic, r.partition, r.offset, d.reason)
        await retry_until_done(
            lambda: produce(out), what=f"produce {event_type} facts", log=log, health=health,
            partitions=_partitions_of(events),
        )  # fmt: skip
        metrics.ingested(event_type.value, len(records), result.facts, result.dead_letters,
                         time.perf_counter() - started)  # fmt: skip

    def ingest_agent(event_type: EventType, dlq: str) -> Any:
        async def run(stream: faust.StreamT[Any]) -> None:
            async for taken in stream.noack_take(settings.batch_max_events, within):
                await rebalance_over(app)
                async with gate.batch():
                    if not (events := current_events(app, taken)):
                        continue
                    try:
                        if not (events := await sources_continuous(events)):
                            continue
                        await ingest_batch(events, event_type, dlq)
                        ingested(events)
                    except Exception as exc:
                        fatal(f"ingest of {event_type}", exc)
                    for event in events:
                        await stream.ack(event)

        return run

    for spec in catalog.sources():
        source = app.topic(spec.name, **RAW)
        dlq = catalog.dead_letter_for(spec.logical).name
        app.agent(source, name=f"ingest-{spec.logical}", sink=None)(
            ingest_agent(EventType(spec.logical), dlq)
        )

    # ---------------------------------------------------------------- seat agent
    facts_dlq = catalog.dead_letter_for(SEAT_FACTS).name

    state_cache = SeatStateCache()
    continuity = SeatFactsContinuity()
    source_continuity = SourceContinuity()

    @app.on_partitions_revoked.connect  # type: ignore[misc]
    async def _revoked(sender: Any, *args: Any, **kwargs: Any) -> None:
        state_cache.invalidate()

    @app.on_partitions_assigned.connect  # type: ignore[misc]
    async def _assigned(sender: Any, *args: Any, **kwargs: Any) -> None:
        state_cache.invalidate()

    async def seat_batch(events: Sequence[Any]) -> None:
        started = time.perf_counter()
        epoch = state_cache.epoch
        decoded: dict[str, Any] = {}
        by_partition: dict[int, list[Any]] = defaultdict(list)
        for event in events:
            by_partition[event.message.partition].append(event)
        positioned = []
        letters: list[DeadLetter] = []
        saved: list[tuple[Any, int, dict[str, bytes]]] = []
        timings: dict[tuple[int, int], MessageTiming] = {}
        facts = messages = 0
        for partition, part_events in sorted(by_partition.items()):
            read = [RawRecord.from_message(e.message) for e in part_events]
            records = once_in_offset_order(read)
            if records is not read:
                log.info("seat-facts/%d: a batch read offsets out of order or twice (a seek "
                         "back; %d copies dropped): each projected once, in offset order",
                         partition, len(read) - len(records))  # fmt: skip
            # One range when no sink's position lies inside the slice (the usual case):
            # one derivation per seat, not one per fact (workers/seat_stage.py).
            whole = continuity.needed_by_all(partition, records[0].offset)
            with pinned(part_events[-1]):
                result = project_partition(records, seat_table.get, state_cache.get, whole=whole)
                seat_table.store(partition, result.states)
            decoded.update(result.seat_states)
            saved.append((part_events[-1], partition, result.states))
            positioned += result.positioned
            letters += result.dead_letters
            timings.update(result.timings)
            facts += result.facts
            messages += len(records)

        async def save_states() -> None:
            await asyncio.gather(*(seat_table.save(p, states) for _, p, states in saved))

        batch_partitions = _partitions_of(events)
        await retry_until_done(
            save_states, what="seat table changelog", log=log, health=health,
            partitions=batch_partitions,
        )  # fmt: skip
        if letters:
            out = dead_letter_records(facts_dlq, letters)
            await retry_until_done(
                lambda: produce(out), what="produce dead letters", log=log, health=health,
                partitions=batch_partitions,
            )  # fmt: skip
        await sinks.connected(health)
        observed = metrics.observed_sinks(sinks.all, timings)  # times each flush
        await apply_to_sinks(observed, facts_spec.name, positioned, health)
        state_cache.keep(decoded, epoch)  # durable in the table, the changelog and both sinks
        metrics.projected(messages, facts, letters, time.perf_counter() - started)

    logical_of = {spec.name: spec.logical for spec in catalog.sources()}
    logical_of[facts_spec.name] = facts_spec.logical

    async def read_again(topic: str, partition: int, offset: int, why: str) -> None:
        """Records of the partition from `offset` on were passed over: read them again."""
        log.warning("%s/%d: records from offset %d were passed over (%s); reading them again",
                    topic, partition, offset, why)  # fmt: skip
        await app.consumer.read_from(topic, partition, offset)
        metrics.passed_over(logical_of[topic])

    async def continuous(events: Sequence[Any]) -> list[Any]:
        """The events of `events` that follow what the sinks applied without a hole; from a
        hole on, none, and the consumer goes back to it."""
        by_partition: dict[int, list[Any]] = defaultdict(list)
        for event in events:
            by_partition[event.message.partition].append(event)
        if continuity.needs_positions(state_cache.epoch, by_partition):
            await sinks.connected(health)
            positions = await retry_until_done(
                lambda: asyncio.gather(*(s.positions(facts_spec.name) for s in sinks.all)),
                what="read sink positions", log=log, health=health,
            )  # fmt: skip
            continuity.learn(positions, by_partition)
        return await up_to_holes(by_partition, continuity.cut)

    def source_cut(tp: Any, offsets: Sequence[int]) -> tuple[int, int | None]:
        committed = app.consumer.committed_offset(tp)
        keep, hole, accepted = source_continuity.cut(state_cache.epoch, tp, offsets, committed)
        if accepted is not None:
            log.info("%s/%d: offsets %d..%d are not in the log (transaction markers, "
                     "compaction or retention)", tp.topic, tp.partition, accepted[0],
                     accepted[1] - 1)  # fmt: skip
        return keep, hole

    async def sources_continuous(events: Sequence[Any]) -> list[Any]:
        """The events of `events` that follow what was ingested before without a hole
        (workers/continuity.py `SourceContinuity`); from a hole on, none, and the consumer
        goes back to it."""
        by_tp: dict[Any, list[Any]] = defaultdict(list)
        for event in events:
            by_tp[event.message.tp].append(event)
        return await up_to_holes(by_tp, source_cut)

    async def up_to_holes(
        groups: Mapping[Any, list[Any]],
        cut: Callable[[Any, Sequence[int]], tuple[int, int | None]],
    ) -> list[Any]:
        """Per partition (`groups`: its events in the order read), the events `cut` lets
        through; for the rest, the consumer goes back to the hole `cut` names."""
        kept: list[Any] = []
        for key, part_events in groups.items():
            keep, hole = cut(key, [e.message.offset for e in part_events])
            kept += part_events[:keep]
            if hole is not None:
                message = part_events[keep].message
                await read_again(message.topic, message.partition, hole,
                                 f"next record read is {message.offset}")  # fmt: skip
        return kept

    def ingested(events: Sequence[Any]) -> None:
        for event in events:
            source_continuity.taken(event.message.tp, event.message.offset)

    async def project_seats(stream: faust.StreamT[Any]) -> None:
        async for taken in stream.noack_take(settings.seat_batch_max_messages, within):
            await rebalance_over(app)
            async with gate.batch():
                if not (events := current_events(app, taken)):
                    continue  # another generation's records: not ours to write any more
                try:
                    if not (events := await continuous(events)):
                        continue
                    await seat_batch(events)
                    for event in events:
                        continuity.applied(event.message.partition, event.message.offset)
                except GenerationChanged as exc:  # a replay swapped the read models
                    reexec(log, str(exc))
                except Exception as exc:
                    fatal("seat projection", exc)
                for event in events:
                    await stream.ack(event)

    app.agent(seat_facts, name="project-seats", sink=None)(project_seats)

    # ---------------------------------------------------------------- passed-over records
    stuck_watch = StuckWatch(checks=STUCK_CHECKS)

    @app.timer(STUCK_CHECK_INTERVAL_S)  # type: ignore[misc]
    async def read_passed_over_records_again() -> None:
        if app.rebalancing:
            stuck_watch.forget()
            return
        consumer = app.consumer
        idle = not gate.in_flight  # records fetched but unacknowledged are in no batch
        holes = {
            tp: consumer.passed_over(tp, idle)
            for tp in consumer.assignment() if tp.topic in logical_of
        }  # fmt: skip
        for tp, offset in stuck_watch.find_stuck(holes):
            await read_again(tp.topic, tp.partition, offset, "the committed offset stays below")

    finish_in_hand_before_revocation(app, settings.session_timeout_s * 0.8, fatal)
    instrument(app, settings, catalog, health, metrics, tables=[table])
    app.seatflow_health = health  # type: ignore[attr-defined]
    app.seatflow_observer = metrics  # type: ignore[attr-defined]
    app.seatflow_gate = gate  # type: ignore[attr-defined]
    return app


def _partitions_of(events: Sequence[Any]) -> set[Partition]:
    """The (topic, partition) pairs a batch of Faust events was read from."""
    return {(e.message.topic, e.message.partition) for e in events}


class _ConsumerPauser:
    """Marks partitions paused while a batch of theirs is retried; leaves fetching to Faust.

    Nothing of a failing batch is acknowledged and its agent does not take the next batch,
    so the partitions make no progress and nothing is committed: they are paused in every
    sense that matters, and `Health.paused_partitions` says so to /readyz and /metrics.
    Faust's own `Consumer.pause_partitions` is deliberately NOT called: it drops records it
    has already fetched for a paused partition from `getmany` without seeking back, so after
    the resume those records never reach the stream and the partition stays stuck behind an
    unacknowledged gap (seen in outage tests). Faust's stream-buffer flow control, which
    keeps such records (`_buffered_partitions`), throttles fetching instead.
    """

    def __init__(self, consumer: Any) -> None:
        self._consumer = consumer  # kept for symmetry with the PartitionControl protocol

    def pause(self, partitions: Collection[Partition]) -> None:
        return None

    def resume(self, partitions: Collection[Partition]) -> None:
        return None
