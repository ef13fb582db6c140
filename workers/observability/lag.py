"""Consumer lag of the worker's group, in messages and in seconds, measured from Kafka.

Per topic-partition of the pipeline (the source topics and seat-facts):

- messages: log end offset - the group's committed offset (the log start when it never
  committed, as `auto_offset_reset=earliest` would read from there);
- seconds: now - the Kafka timestamp of the record *at* the committed offset, i.e. the age
  of the oldest record the group has not consumed; 0 when the partition is caught up. It is
  read, not estimated from rates: a consumer of our own (no group, never commits) fetches
  that one record. The timestamp is cached per (partition, committed offset), so a partition
  whose commit did not move costs no fetch;
- the pipeline's staleness: the oldest *source* record timestamp not yet through both
  stages. For a source partition that is its own lag; for a seat-facts partition it is the
  source timestamp the ingest stage put in the headers of the uncommitted message.

Everything comes from the broker, not from the worker's memory, so the same code serves the
worker's /metrics, `seatflow lag` and `seatflow lag --serve` (which reports lag while no
worker runs, exactly when it matters). Committed offsets trail processing by up to Faust's
commit interval (about 3 s), so a busy partition shows a few seconds of lag.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from workers.kafka_clients import client_kwargs
from workers.observability.timing import source_timestamp_ms
from workers.settings import Settings
from workers.topic_catalog import TopicCatalog, load_catalog

log = logging.getLogger("seatflow.lag")

SEAT_FACTS = "seatflow.seat-facts"
FETCH_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class PartitionLag:
    topic: str
    """The logical topic name (the label); `physical` is the name in Kafka."""
    physical: str
    partition: int
    committed: int
    """The group's committed offset, or the log start when the group never committed."""
    end: int
    messages: int
    seconds: float | None
    """Age of the oldest uncommitted record; 0 when caught up; None if it could not be read."""
    source_seconds: float | None = None
    """Age of the oldest source record behind that record (seat-facts: from its headers)."""


@dataclass(frozen=True, slots=True)
class Measurement:
    group: str
    partitions: list[PartitionLag]
    measured_at: float

    @property
    def staleness(self) -> float | None:
        """The oldest source record not yet through the pipeline, in seconds (0: none)."""
        ages = [p.source_seconds for p in self.partitions if p.messages]
        if any(a is None for a in ages):
            return None
        return max((a for a in ages if a is not None), default=0.0)

    def total(self, topic: str | None = None) -> int:
        return sum(p.messages for p in self.partitions if topic in (None, p.topic))


def pipeline_topics(catalog: TopicCatalog) -> dict[str, str]:
    """Physical name -> logical name of every topic the group commits offsets for."""
    topics = {spec.name: spec.logical for spec in catalog.sources()}
    facts = catalog.get(SEAT_FACTS)
    topics[facts.name] = facts.logical
    return topics


class LagMeter:
    """Measures one group's lag over and over with clients of its own (start, measure, close).

    Its consumer has no group id and never commits, so measuring changes nothing."""

    def __init__(self, client: Mapping[str, Any], group: str, topics: Mapping[str, str]) -> None:
        self.client = dict(client)
        """aiokafka connection arguments (`workers.kafka_clients.client_kwargs`)."""
        self.group = group
        self.topics = dict(topics)
        self.admin: AIOKafkaAdminClient | None = None
        self.consumer: AIOKafkaConsumer | None = None
        self._stamps: dict[TopicPartition, tuple[int, int, int | None]] = {}
        """tp -> (offset, record timestamp ms, source timestamp ms) of the record read."""

    @classmethod
    def for_settings(cls, settings: Settings, catalog: TopicCatalog | None = None) -> LagMeter:
        catalog = catalog or load_catalog(settings)
        return cls(client_kwargs(settings), settings.consumer_group, pipeline_topics(catalog))

    async def start(self) -> None:
        self.admin = AIOKafkaAdminClient(**self.client)
        await self.admin.start()
        self.consumer = AIOKafkaConsumer(
            **self.client,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_bytes=4 * 1024 * 1024,
            max_partition_fetch_bytes=1024 * 1024,
        )
        await self.consumer.start()

    async def close(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()
        if self.admin is not None:
            await self.admin.close()
        self.consumer = self.admin = None

    async def __aenter__(self) -> LagMeter:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _partitions(self) -> list[TopicPartition]:
        assert self.admin is not None
        described = await self.admin.describe_topics(list(self.topics))
        return sorted(
            TopicPartition(t["topic"], p["partition"])
            for t in described
            if not t.get("error_code")
            for p in t["partitions"]
        )

    async def measure(self) -> Measurement:
        assert self.admin is not None and self.consumer is not None
        tps = await self._partitions()
        committed_meta = await self.admin.list_consumer_group_offsets(self.group)
        starts = await self.consumer.beginning_offsets(tps)
        ends = await self.consumer.end_offsets(tps)
        positions: dict[TopicPartition, int] = {}
        for tp in tps:
            meta = committed_meta.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else starts[tp]
            positions[tp] = max(done, starts[tp])  # below the log start: reset to earliest
        behind = [tp for tp in tps if ends[tp] > positions[tp]]
        await self._read_stamps({tp: positions[tp] for tp in behind})
        now_ms = time.time() * 1000
        out = []
        for tp in tps:
            messages = max(0, ends[tp] - positions[tp])
            seconds = source = 0.0 if not messages else None
            stamp = self._stamps.get(tp)
            if messages and stamp is not None and stamp[0] == positions[tp]:
                seconds = max(0.0, (now_ms - stamp[1]) / 1000)
                src = stamp[2] if stamp[2] is not None else stamp[1]
                source = max(0.0, (now_ms - src) / 1000)
            out.append(
                PartitionLag(
                    self.topics[tp.topic],
                    tp.topic,
                    tp.partition,
                    positions[tp],
                    ends[tp],
                    messages,
                    seconds,
                    source,
                )
            )
        for tp in [tp for tp in self._stamps if tp not in behind]:
            del self._stamps[tp]
        return Measurement(self.group, out, time.time())

    async def _read_stamps(self, wanted: Mapping[TopicPartition, int]) -> None:
        """Fetch the record at each offset (the first one at or after it) unless cached."""
        todo = {tp: off for tp, off in wanted.items() if self._stamps.get(tp, (-1,))[0] != off}
        if not todo:
            return
        consumer = self.consumer
        assert consumer is not None
        consumer.assign(list(todo))
        for tp, offset in todo.items():
            consumer.seek(tp, offset)
        deadline = time.monotonic() + FETCH_TIMEOUT_S
        remaining = dict(todo)
        try:
            while remaining and time.monotonic() < deadline:
                batches = await consumer.getmany(
                    *remaining, timeout_ms=int(FETCH_TIMEOUT_S * 1000), max_records=len(remaining)
                )
                for tp, messages in batches.items():
                    first = next((m for m in messages if m.offset >= remaining.get(tp, 0)), None)
                    if first is None or tp not in remaining:
                        continue
                    if first.offset > remaining[tp]:
                        # compacted or aborted gap: the next record stands for the offset
                        log.debug("no record at %s@%d, using %d", tp, remaining[tp], first.offset)
                    source = None
                    if self.topics.get(tp.topic) == SEAT_FACTS:
                        source = source_timestamp_ms(
                            [(k, v or b"") for k, v in (first.headers or ())]
                        )
                    self._stamps[tp] = (remaining.pop(tp), first.timestamp, source)
        finally:
            consumer.unsubscribe()
        if remaining:
            log.warning(
                "could not read the record at the committed offset of %s",
                ", ".join(f"{tp.topic}/{tp.partition}" for tp in remaining),
            )


async def measure(settings: Settings, catalog: TopicCatalog | None = None) -> Measurement:
    """One measurement of the group of `settings` (for `seatflow lag` and tests)."""
    async with LagMeter.for_settings(settings, catalog) as meter:
        return await meter.measure()


async def measure_forever(
    meter: LagMeter,
    interval: float,
    report: Callable[[Measurement], None],
    on_error: Callable[[BaseException], None] | None = None,
) -> None:
    """Measure every `interval` seconds until cancelled; `report(measurement)` each time.

    A failed measurement (Kafka down) is logged once per change of state and retried at
    the next interval; the metrics keep the last measurement and its timestamp says how
    old it is."""
    failing = False
    while True:
        started = time.monotonic()
        try:
            if meter.consumer is None:
                await meter.start()
            measurement = await meter.measure()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not failing:
                log.warning("lag measurement failing: %s: %s", type(exc).__name__, exc)
                failing = True
            if on_error is not None:
                on_error(exc)
            await _restart(meter)
        else:
            if failing:
                log.warning("lag measurement recovered")
                failing = False
            report(measurement)
        await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))


async def _restart(meter: LagMeter) -> None:
    try:
        await meter.close()
    except Exception:  # a client that failed may fail to close too; new ones come next
        meter.consumer = meter.admin = None
