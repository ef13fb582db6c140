"""Every metric of the worker, in one registry, behind a small observer API.

The agents call plain methods (`observer.ingested(...)`, `observer.projected(...)`); only
this module knows Prometheus. Conventions: base units (seconds, bytes), counters end in
`_total`, and every label set is bounded by the code or the topic catalog: topics (logical
names), partitions, sinks, dependencies, error kinds, readiness checks. Never a seat, an
order, a customer or an error message.

State that is cheap to read but changes all the time (readiness, paused and assigned
partitions, the latest lag measurement) is read at scrape time by collectors, so a series
can never go stale and nothing has to remember to reset a gauge.
"""

from __future__ import annotations

import contextlib
import platform
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from workers import __version__
from workers.deadletter import DeadLetter
from workers.decoding import DecodeErrorKind
from workers.observability.lag import Measurement
from workers.observability.timing import MessageTiming, now_ms
from workers.sinks.base import ApplyResult, PositionedMutations, Sink

# `*_created` series double every counter and histogram for a timestamp nobody graphs.
disable_created_metrics()

SEAT_FACTS = "seatflow.seat-facts"
SINKS = ("redis", "postgres")
SEAT_FACTS_REASON = "MalformedFactsError"
"""The one reason a seat-facts message is dead-lettered (a message we did not write)."""
DEPENDENCIES = ("kafka", "redis", "postgres")

LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    1800.0,
    3600.0,
    86400.0,
)
"""End-to-end spans milliseconds (live) to days (a replay, or event times of old events)."""
FLUSH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000)
REBALANCE_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


def reason_of(letter: DeadLetter) -> str:
    """The bounded reason label: the error kind (`DecodeError:schema_violation` ->
    `schema_violation`), else the exception class. The free-text reason is in the headers of
    the dead letter, never in a label."""
    kind = getattr(letter, "kind", None)
    return str(kind) if kind else letter.error_class.rsplit(":", 1)[-1]


def dependency_of(operation: str) -> str:
    """Which dependency a retried operation waits for (`postgres sink` -> `postgres`)."""
    for name in ("redis", "postgres"):
        if name in operation:
            return name
    return "kafka"


@dataclass(frozen=True, slots=True)
class Check:
    """One readiness check: its name, whether it passes, and why not."""

    name: str
    ok: bool
    detail: str = ""


@dataclass(slots=True)
class WorkerState:
    """What the worker looks like right now; read at every scrape and every /readyz."""

    checks: list[Check] = field(default_factory=list)
    degraded: bool = False
    sinks_up: dict[str, bool] = field(default_factory=dict)
    assigned: dict[str, int] = field(default_factory=dict)
    """Assigned partitions per logical topic."""
    paused: dict[str, int] = field(default_factory=dict)
    """Paused partitions per logical topic."""
    failing: dict[str, str] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return all(c.ok for c in self.checks)


class _StateCollector(Collector):
    def __init__(self, read: Callable[[], WorkerState] | None = None) -> None:
        self.read = read

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        if self.read is None:
            return
        state = self.read()
        ready = GaugeMetricFamily("seatflow_ready", "1 when /readyz answers 200")
        ready.add_metric([], 1.0 if state.ready else 0.0)
        degraded = GaugeMetricFamily(
            "seatflow_degraded",
            "1 while a sink is down, a dependency is retried or a partition is paused",
        )
        degraded.add_metric([], 1.0 if state.degraded else 0.0)
        checks = GaugeMetricFamily(
            "seatflow_health_check", "Readiness checks, 1 passing, 0 failing", labels=["check"]
        )
        for check in state.checks:
            checks.add_metric([check.name], 1.0 if check.ok else 0.0)
        sinks = GaugeMetricFamily(
            "seatflow_sink_up",
            "1 when the sink answers and its last flush succeeded",
            labels=["sink"],
        )
        for sink, up in sorted(state.sinks_up.items()):
            sinks.add_metric([sink], 1.0 if up else 0.0)
        assigned = GaugeMetricFamily(
            "seatflow_assigned_partitions",
            "Partitions assigned to this worker",
            labels=["topic"],
        )
        for topic, n in sorted(state.assigned.items()):
            assigned.add_metric([topic], float(n))
        paused = GaugeMetricFamily(
            "seatflow_paused_partitions",
            "Assigned partitions that are paused",
            labels=["topic"],
        )
        for topic, n in sorted(state.paused.items()):
            paused.add_metric([topic], float(n))
        retrying = GaugeMetricFamily(
            "seatflow_dependency_retrying",
            "1 while an operation on the dependency is being retried",
            labels=["dependency"],
        )
        failing = {dependency_of(op) for op in state.failing}
        for dep in DEPENDENCIES:
            retrying.add_metric([dep], 1.0 if dep in failing else 0.0)
        yield from (ready, degraded, checks, sinks, assigned, paused, retrying)


class LagCollector(Collector):
    """Renders the latest lag measurement: no stale series when partitions come and go."""

    def __init__(self, group: str) -> None:
        self.group = group
        self.latest: Measurement | None = None

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        latest = self.latest
        if latest is None:
            return
        labels = ["group", "topic", "partition"]
        messages = GaugeMetricFamily(
            "seatflow_consumer_lag_messages",
            "Records of the partition not yet committed by the consumer group",
            labels=labels,
        )
        seconds = GaugeMetricFamily(
            "seatflow_consumer_lag_seconds",
            "Age of the oldest record not yet committed by the group (record timestamp); "
            "0 when caught up",
            labels=labels,
        )
        committed = GaugeMetricFamily(
            "seatflow_consumer_committed_offset",
            "The group's committed offset (the log start when it never committed)",
            labels=labels,
        )
        end = GaugeMetricFamily(
            "seatflow_topic_end_offset", "Log end offset of the partition", labels=labels
        )
        for p in latest.partitions:
            values = [self.group, p.topic, str(p.partition)]
            messages.add_metric(values, float(p.messages))
            if p.seconds is not None:
                seconds.add_metric(values, p.seconds)
            committed.add_metric(values, float(p.committed))
            end.add_metric(values, float(p.end))
        yield from (messages, seconds, committed, end)
        staleness = latest.staleness
        if staleness is not None:
            stale = GaugeMetricFamily(
                "seatflow_projection_staleness_seconds",
                "Age of the oldest source record not yet through the whole pipeline (sources "
                "and seat-facts committed); 0 when caught up",
                labels=["group"],
            )
            stale.add_metric([self.group], staleness)
            yield stale
        measured = GaugeMetricFamily(
            "seatflow_lag_measured_timestamp_seconds",
            "When consumer lag was last measured (Unix time)",
            labels=["group"],
        )
        measured.add_metric([self.group], latest.measured_at)
        yield measured


class _WatchedFailures(dict[str, str]):
    """`Health.failing`, counting every operation that starts being retried.

    `retry_until_done` records an operation here when its first attempt fails and removes
    it when it succeeds: one entry is exactly one batch held back and retried."""

    def __init__(self, initial: Mapping[str, str], started: Callable[[str], None]) -> None:
        super().__init__(initial)
        self._started = started

    def __setitem__(self, key: str, value: str) -> None:
        if key not in self:
            self._started(key)
        super().__setitem__(key, value)


def build_info(registry: CollectorRegistry) -> None:
    Info(
        "seatflow_build", "Version of seatflow and of its stream libraries", registry=registry
    ).info(
        {
            "version": __version__,
            "python": platform.python_version(),
            "faust": _version("faust-streaming"),
            "aiokafka": _version("aiokafka"),
        }
    )


class LagExporter:
    """The lag metrics alone, for `seatflow lag --serve` (no worker counters)."""

    def __init__(self, group: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        build_info(self.registry)
        self.lag = LagCollector(group)
        self.registry.register(self.lag)
        self.errors = Counter(
            "seatflow_lag_measurement_errors_total",
            "Lag measurements that failed",
            registry=self.registry,
        )

    def lag_measured(self, measurement: Measurement) -> None:
        self.lag.latest = measurement

    def lag_failed(self, exc: BaseException) -> None:
        self.errors.inc()


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


class Observer:
    """The worker's metrics. One per process; tests make their own."""

    def __init__(
        self,
        group: str,
        source_topics: Sequence[str] = (),
        registry: CollectorRegistry | None = None,
        *,
        process_metrics: bool = True,
    ) -> None:
        self.group = group
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        if process_metrics:
            ProcessCollector(registry=r)
        build_info(r)
        self.records_consumed = Counter(
            "seatflow_records_consumed_total",
            "Records taken from a topic by an agent",
            ["topic"],
            registry=r,
        )
        self.events_processed = Counter(
            "seatflow_events_processed_total",
            "Records processed (decoded and passed on), dead letters excluded",
            ["topic"],
            registry=r,
        )
        self.dead_letters = Counter(
            "seatflow_dead_letters_total",
            "Records sent to a dead-letter topic, by origin topic and error kind",
            ["topic", "reason"],
            registry=r,
        )
        self.batches_retried = Counter(
            "seatflow_batches_retried_total",
            "Batches held back and retried because a dependency failed",
            ["dependency"],
            registry=r,
        )
        self.facts_produced = Counter(
            "seatflow_seat_facts_produced_total",
            "Seat facts cut from source events",
            ["topic"],
            registry=r,
        )
        self.facts_projected = Counter(
            "seatflow_seat_facts_projected_total",
            "Seat facts applied to the seat table",
            registry=r,
        )
        self.batch_duration = Histogram(
            "seatflow_batch_duration_seconds",
            "Time to process one batch of an agent, retries included",
            ["stage"],
            buckets=FLUSH_BUCKETS,
            registry=r,
        )
        self.sink_flush = Histogram(
            "seatflow_sink_flush_duration_seconds",
            "Time of one successful sink apply (one transaction / pipeline)",
            ["sink"],
            buckets=FLUSH_BUCKETS,
            registry=r,
        )
        self.sink_batch = Histogram(
            "seatflow_sink_flush_batch_facts",
            "Seat facts per sink flush",
            ["sink"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.sink_applied_facts = Counter(
            "seatflow_sink_applied_facts_total",
            "Seat facts whose mutations a sink applied (skipped re-deliveries excluded)",
            ["sink"],
            registry=r,
        )
        self.sink_applied_offset = Gauge(
            "seatflow_sink_applied_offset",
            "Next seat-facts offset the sink expects (its checkpoint), per partition",
            ["sink", "topic", "partition"],
            registry=r,
        )
        self.decode_to_applied = Histogram(
            "seatflow_decode_to_applied_seconds",
            "From the ingest stage decoding an event to a sink having applied it",
            ["sink"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.end_to_end = Histogram(
            "seatflow_end_to_end_latency_seconds",
            "From an event's own time (since=event_time) or its Kafka record timestamp "
            "(since=record_timestamp) to a sink having applied it",
            ["sink", "since"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.rebalances = Counter(
            "seatflow_rebalances_total",
            "Consumer group rebalances this worker took part in",
            registry=r,
        )
        self.rebalance_duration = Histogram(
            "seatflow_rebalance_duration_seconds",
            "From rebalance start to streams resumed",
            buckets=REBALANCE_BUCKETS,
            registry=r,
        )
        self.commits = Counter(
            "seatflow_commits_total", "Offset commits completed by the consumer", registry=r
        )
        self.rereads = Counter(
            "seatflow_passed_over_rereads_total",
            "Partitions sought back because records were passed over (workers/continuity.py)",
            ["topic"],
            registry=r,
        )
        self.table_keys = Gauge(
            "seatflow_table_keys",
            "Keys in the table's active partitions (RocksDB: its estimate)",
            ["table"],
            registry=r,
        )
        self.lag_errors = Counter(
            "seatflow_lag_measurement_errors_total",
            "Lag measurements that failed",
            registry=r,
        )
        self.lag = LagCollector(group)
        self.state = _StateCollector()
        r.register(self.lag)
        r.register(self.state)
        self._initialise(source_topics)

    def _initialise(self, source_topics: Sequence[str]) -> None:
        """Create every bounded label combination at 0, so that rate() and increase() see
        the first event and every dashboard query has data from the start."""
        for topic in (*source_topics, SEAT_FACTS):
            self.records_consumed.labels(topic)
            self.events_processed.labels(topic)
            self.rereads.labels(topic)
        for topic in source_topics:
            self.facts_produced.labels(topic)
            for kind in DecodeErrorKind:
                self.dead_letters.labels(topic, kind.value)
        self.dead_letters.labels(SEAT_FACTS, SEAT_FACTS_REASON)
        for dep in DEPENDENCIES:
            self.batches_retried.labels(dep)
        for sink in SINKS:
            self.sink_flush.labels(sink)
            self.sink_batch.labels(sink)
            self.sink_applied_facts.labels(sink)
            self.decode_to_applied.labels(sink)
            for since in ("event_time", "record_timestamp"):
                self.end_to_end.labels(sink, since)
        self.batch_duration.labels("ingest")
        self.batch_duration.labels("seat")

    # ---------------------------------------------------------------- stages
    def ingested(
        self,
        topic: str,
        records: int,
        facts: int,
        letters: Sequence[DeadLetter],
        seconds: float,
    ) -> None:
        """An ingest batch of `topic` (logical) is durable: facts and dead letters acked."""
        self.records_consumed.labels(topic).inc(records)
        self.events_processed.labels(topic).inc(records - len(letters))
        self.facts_produced.labels(topic).inc(facts)
        self._dead_lettered(topic, letters)
        self.batch_duration.labels("ingest").observe(seconds)

    def projected(
        self, records: int, facts: int, letters: Sequence[DeadLetter], seconds: float
    ) -> None:
        """A seat-stage batch is durable: table changelog, dead letters and both sinks."""
        self.records_consumed.labels(SEAT_FACTS).inc(records)
        self.events_processed.labels(SEAT_FACTS).inc(records - len(letters))
        self.facts_projected.inc(facts)
        self._dead_lettered(SEAT_FACTS, letters)
        self.batch_duration.labels("seat").observe(seconds)

    def _dead_lettered(self, topic: str, letters: Sequence[DeadLetter]) -> None:
        for letter in letters:
            self.dead_letters.labels(topic, reason_of(letter)).inc()

    def retry_started(self, operation: str) -> None:
        self.batches_retried.labels(dependency_of(operation)).inc()

    def watch(self, health: Any) -> None:
        """Count retried batches from `Health.failing` (see `_WatchedFailures`)."""
        failing = getattr(health, "failing", None)
        if isinstance(failing, dict) and not isinstance(failing, _WatchedFailures):
            # a Health whose `failing` cannot be replaced simply goes uncounted
            with contextlib.suppress(AttributeError):
                health.failing = _WatchedFailures(failing, self.retry_started)

    def sink_flushed(
        self,
        sink: str,
        seconds: float,
        batch: Sequence[PositionedMutations],
        result: ApplyResult,
        timings: Mapping[tuple[int, int], MessageTiming],
        applied_at_ms: int,
    ) -> None:
        """One successful `apply` of `sink`: duration, size, positions, latencies."""
        facts = sum(t.facts for e in batch if (t := timings.get((e.partition, e.offset))))
        self.sink_flush.labels(sink).observe(seconds)
        self.sink_batch.labels(sink).observe(facts)
        nexts: dict[int, int] = {}
        for entry in batch:
            nexts[entry.partition] = max(nexts.get(entry.partition, 0), entry.offset + 1)
        for partition, offset in nexts.items():
            self.sink_applied_offset.labels(sink, SEAT_FACTS, str(partition)).set(offset)
        if not result.applied:
            return  # all re-deliveries: their latencies would measure the crash, not the flow
        self.sink_applied_facts.labels(sink).inc(facts)
        decode = self.decode_to_applied.labels(sink)
        by_record = self.end_to_end.labels(sink, "record_timestamp")
        by_event = self.end_to_end.labels(sink, "event_time")
        for entry in batch:
            t = timings.get((entry.partition, entry.offset))
            if t is None:
                continue
            if t.decoded_at_ms is not None:
                decode.observe(max(0, applied_at_ms - t.decoded_at_ms) / 1000)
            if t.source_ts_ms is not None:
                by_record.observe(max(0, applied_at_ms - t.source_ts_ms) / 1000)
            if t.event_time_ms is not None:
                by_event.observe(max(0, applied_at_ms - t.event_time_ms) / 1000)

    def observed_sinks(
        self, sinks: Sequence[Sink], timings: Mapping[tuple[int, int], MessageTiming]
    ) -> list[Sink]:
        return [ObservedSink(s, self, timings) for s in sinks]

    # ---------------------------------------------------------------- Faust sensor
    def rebalance_started(self) -> None:
        self.rebalances.inc()

    def rebalance_ended(self, seconds: float) -> None:
        self.rebalance_duration.observe(seconds)

    def committed(self) -> None:
        self.commits.inc()

    def passed_over(self, topic: str) -> None:
        self.rereads.labels(topic).inc()

    # ---------------------------------------------------------------- state
    def read_state_with(self, read: Callable[[], WorkerState]) -> None:
        self.state.read = read

    def lag_measured(self, measurement: Measurement) -> None:
        self.lag.latest = measurement

    def lag_failed(self, exc: BaseException) -> None:
        self.lag_errors.inc()


class ObservedSink:
    """A sink that reports each successful apply to the observer; behaviour unchanged."""

    def __init__(
        self, sink: Sink, observer: Observer, timings: Mapping[tuple[int, int], MessageTiming]
    ) -> None:
        self.sink = sink
        self.name = sink.name
        self.observer = observer
        self.timings = timings

    async def apply(self, topic: str, batch: Sequence[PositionedMutations]) -> ApplyResult:
        started = time.perf_counter()
        result = await self.sink.apply(topic, batch)
        seconds = time.perf_counter() - started
        self.observer.sink_flushed(self.name, seconds, batch, result, self.timings, now_ms())
        return result

    async def positions(self, topic: str) -> dict[int, int]:
        return await self.sink.positions(topic)
