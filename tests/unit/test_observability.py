"""Metrics, readiness and timing logic without services: names, labels, counting, checks."""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP
from prometheus_client.parser import text_string_to_metric_families

from tests.monitoring_files import alert_exprs, alert_rules, dashboard_exprs, metric_names
from workers.deadletter import DeadLetter
from workers.observability.health import Readiness, readiness_body
from workers.observability.lag import Measurement, PartitionLag
from workers.observability.metrics import Observer, WorkerState, reason_of
from workers.observability.timing import (
    DECODED_AT,
    SOURCE_TS_MIN,
    message_timing,
    oldest_event_time_ms,
    timing_headers,
)
from workers.projection.facts import CatalogFact, CreatedFact
from workers.projection.model import Mutations
from workers.records import RawRecord
from workers.retry import Backoff, Health, retry_until_done
from workers.sinks.base import ApplyResult, PositionedMutations

SOURCES = ["seats-generated", "reservation-created", "order-placed", "reservation-expired"]
ALLOWED_LABELS = {
    "group", "topic", "partition", "reason", "dependency", "sink", "since", "stage", "table",
    "check", "le", "version", "python", "faust", "aiokafka",
}  # fmt: skip


def record(offset: int = 0, ts: int = 1_700_000_000_000, headers: Any = ()) -> RawRecord:
    return RawRecord("t", 0, offset, ts, b"k", b"v", tuple(headers))


def measurement() -> Measurement:
    return Measurement(
        "g",
        [
            PartitionLag("reservation-created", "p.reservation-created", 0, 5, 9, 4, 12.5, 12.5),
            PartitionLag("seatflow.seat-facts", "p.seatflow.seat-facts", 1, 7, 7, 0, 0.0, 0.0),
        ],
        1_700_000_000.0,
    )


def exported(observer: Observer) -> dict[str, list[Any]]:
    from prometheus_client import generate_latest

    text = generate_latest(observer.registry).decode()
    out: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


@pytest.fixture
def observer() -> Observer:
    obs = Observer("g", SOURCES, process_metrics=False)
    obs.lag_measured(measurement())
    obs.read_state_with(
        lambda: WorkerState(
            sinks_up={"redis": True, "postgres": True},
            assigned={"order-placed": 4},
            paused={"order-placed": 0},
        )
    )
    obs.table_keys.labels("seats").set(0)  # the worker's monitor samples it
    return obs


def test_every_metric_of_the_dashboard_and_the_alerts_is_exported(observer: Observer) -> None:
    observer.sink_flushed(
        "redis", 0.01, [PositionedMutations(0, 3, Mutations())], ApplyResult(1, 0), {}, 0
    )
    names = set(exported(observer)) | {"up"}
    used = {n for _, e in dashboard_exprs() + alert_exprs() for n in metric_names(e)}
    assert used, "no expression found"
    assert not used - names, f"not exported: {sorted(used - names)}"


def test_names_follow_prometheus_conventions_and_labels_stay_bounded(observer: Observer) -> None:
    from prometheus_client import generate_latest

    text = generate_latest(observer.registry).decode()
    for family in text_string_to_metric_families(text):
        assert family.name.startswith("seatflow_"), family.name
        if family.type == "counter":
            assert not family.name.endswith("_total")  # the parser strips the suffix...
            assert f"{family.name}_total" in text  # ...which is there
        for sample in family.samples:
            assert set(sample.labels) <= ALLOWED_LABELS, (sample.name, sample.labels)
    units = re.findall(r"^# TYPE (seatflow_\S+) (\w+)", text, re.M)
    for name, _kind in units:
        assert not re.search(r"_(ms|milliseconds|minutes|bytes_total)$", name), name
        if "latency" in name or "duration" in name:
            assert name.endswith("_seconds"), name


def test_dead_letters_count_by_topic_and_bounded_reason(observer: Observer) -> None:
    class Bad(Exception):
        kind = "schema_violation"

    letter = DeadLetter.from_exception(record(), Bad("field x: 'free text' is wrong"), "r", None)
    assert reason_of(letter) == "schema_violation"
    observer.ingested("reservation-created", 10, 12, [letter, letter], 0.01)
    samples = exported(observer)
    dl = {
        (s.labels["topic"], s.labels["reason"]): s.value
        for s in samples["seatflow_dead_letters_total"]
    }
    assert dl[("reservation-created", "schema_violation")] == 2
    assert dl[("order-placed", "undecodable")] == 0  # every bounded combination exists at 0
    processed = {s.labels["topic"]: s.value for s in samples["seatflow_events_processed_total"]}
    assert processed["reservation-created"] == 8


async def test_retried_batches_are_counted_once_per_batch_by_dependency(
    observer: Observer,
) -> None:
    health = Health()
    observer.watch(health)
    attempts = 0

    async def flaky() -> int:
        nonlocal attempts
        attempts += 1
        if attempts < 4:
            raise ConnectionRefusedError("postgres down")
        return 1

    await retry_until_done(
        flaky, what="postgres sink", log=logging.getLogger("t"), health=health,
        backoff=Backoff(initial=0.001, maximum=0.002),
    )  # fmt: skip
    retried = {
        s.labels["dependency"]: s.value
        for s in exported(observer)["seatflow_batches_retried_total"]
    }
    assert retried == {"postgres": 1, "redis": 0, "kafka": 0}
    assert not health.failing


def test_sink_flush_observes_duration_size_positions_and_latencies(observer: Observer) -> None:
    timing = message_timing(
        record(headers=[(DECODED_AT, b"1000"), (SOURCE_TS_MIN, b"500")]), 100, facts=7
    )
    batch = [PositionedMutations(2, 41, Mutations()), PositionedMutations(2, 42, Mutations())]
    timings = {(2, 41): timing, (2, 42): timing}
    observer.sink_flushed("postgres", 0.02, batch, ApplyResult(2, 0), timings, 3000)
    s = exported(observer)
    assert [x.value for x in s["seatflow_sink_applied_offset"]] == [43]
    assert {x.labels["sink"]: x.value for x in s["seatflow_sink_flush_batch_facts_sum"]} == {
        "redis": 0, "postgres": 14,
    }  # fmt: skip
    e2e = {
        (x.labels["sink"], x.labels["since"]): x.value
        for x in s["seatflow_end_to_end_latency_seconds_sum"]
    }
    assert e2e[("postgres", "record_timestamp")] == pytest.approx(2 * 2.5)
    assert e2e[("postgres", "event_time")] == pytest.approx(2 * 2.9)
    decode = {x.labels["sink"]: x.value for x in s["seatflow_decode_to_applied_seconds_sum"]}
    assert decode["postgres"] == pytest.approx(2 * 2.0)
    # a re-delivered batch the sink skipped entirely: positions yes, latencies no
    observer.sink_flushed("postgres", 0.02, batch, ApplyResult(0, 2), timings, 99_000)
    s = exported(observer)
    assert {x.labels["sink"]: x.value for x in s["seatflow_decode_to_applied_seconds_count"]} == {
        "redis": 0, "postgres": 2,
    }  # fmt: skip


def test_lag_is_exported_per_group_topic_partition(observer: Observer) -> None:
    s = exported(observer)
    lag = {
        (x.labels["topic"], x.labels["partition"]): x.value
        for x in s["seatflow_consumer_lag_messages"]
    }
    assert lag == {("reservation-created", "0"): 4, ("seatflow.seat-facts", "1"): 0}
    assert [x.value for x in s["seatflow_projection_staleness_seconds"]] == [12.5]


def test_staleness_is_the_oldest_unprocessed_source_record() -> None:
    m = measurement()
    assert m.staleness == 12.5
    assert m.total() == 4 and m.total("seatflow.seat-facts") == 0
    unknown = Measurement("g", [PartitionLag("x", "x", 0, 0, 3, 3, None, None)], 0.0)
    assert unknown.staleness is None


def test_timing_headers_carry_decode_time_and_oldest_record_timestamp() -> None:
    records = [record(0, 2_000), record(1, 1_000), record(2, 0)]  # 0: no timestamp
    headers = timing_headers(records, decoded_at_ms=5_000)
    timing = message_timing(record(headers=headers))
    assert (timing.decoded_at_ms, timing.source_ts_ms) == (5_000, 1_000)
    assert message_timing(record()).decoded_at_ms is None  # older messages: no headers


def test_oldest_event_time_of_a_message() -> None:
    t1 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    facts = [
        CatalogFact(fact_id="a", seat_id="s", concert_event_id="e", section="A",
                    seat_number="1", generated_at=t1),
        CreatedFact(fact_id="b", seat_id="s", reservation_id="r", message_id="m",
                    customer_id="c", seat_number="1", section=None, base_price=Decimal(1),
                    created_at=t0, expires_at=t1),
    ]  # fmt: skip
    assert oldest_event_time_ms(facts) == int(t0.timestamp() * 1000)
    assert oldest_event_time_ms([]) is None


class FakeConsumer:
    def __init__(self, assigned: set[tuple[str, int]], paused: set[tuple[str, int]]) -> None:
        self._assigned = {TP(t, p) for t, p in assigned}
        self._paused_partitions = {TP(t, p) for t, p in paused}

    def assignment(self) -> set[Any]:
        return self._assigned


def fake_app(consumer: FakeConsumer | None, recovered: bool = True) -> Any:
    event = asyncio.Event()
    if recovered:
        event.set()
    return SimpleNamespace(
        _consumer=consumer,
        tables=SimpleNamespace(recovery=SimpleNamespace(completed=event)),
        in_recovery=False,
        rebalancing=False,
    )


TOPICS = {"p.reservation-created": "reservation-created", "p.seat-facts": "seatflow.seat-facts"}


def probes(redis: bool = True, postgres: bool = True) -> dict[str, Any]:
    return {
        "redis": SimpleNamespace(ok=redis, detail="" if redis else "ConnectionError"),
        "postgres": SimpleNamespace(ok=postgres, detail="" if postgres else "OSError: refused"),
    }


def test_ready_when_assigned_recovered_and_both_sinks_answer() -> None:
    consumer = FakeConsumer({("p.reservation-created", 0), ("p.seat-facts", 0)}, set())
    state = Readiness(fake_app(consumer), Health(), probes(), TOPICS).state()
    assert state.ready and not state.degraded
    body = readiness_body(state)
    assert body["status"] == "ready" and all(c["ok"] for c in body["checks"].values())
    assert state.assigned == {"reservation-created": 1, "seatflow.seat-facts": 1}


def test_not_ready_names_every_failing_check() -> None:
    health = Health()
    health.mark_failing("postgres sink", "ConnectionRefusedError", [("p.seat-facts", 0)])
    consumer = FakeConsumer({("p.seat-facts", 0)}, set())
    state = Readiness(fake_app(consumer), health, probes(postgres=False), TOPICS).state()
    body = readiness_body(state)
    assert body["status"] == "not_ready" and body["degraded"]
    failing = {name for name, c in body["checks"].items() if not c["ok"]}
    assert failing == {"postgres", "not_paused"}
    assert "refused" in body["checks"]["postgres"]["detail"]
    assert "postgres sink" in body["checks"]["postgres"]["detail"]
    assert state.sinks_up == {"redis": True, "postgres": False}
    assert state.paused["seatflow.seat-facts"] == 1

    nothing = Readiness(fake_app(None, recovered=False), Health(), probes(), TOPICS).state()
    assert {c.name for c in nothing.checks if not c.ok} == {
        "partitions_assigned", "tables_recovered",
    }  # fmt: skip


def test_every_alert_has_a_promtool_case_firing_and_one_not_firing() -> None:
    import yaml

    from tests.monitoring_files import ALERTS_TEST

    doc = yaml.safe_load(ALERTS_TEST.read_text())
    fires: set[str] = set()
    silent: set[str] = set()
    for test in doc["tests"]:
        for case in test.get("alert_rule_test", []):
            (fires if case.get("exp_alerts") else silent).add(case["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names == fires == silent


def test_rereads_of_passed_over_records_count_by_topic(observer: Observer) -> None:
    observer.passed_over("reservation-created")
    observer.passed_over("reservation-created")
    observer.passed_over("seatflow.seat-facts")
    samples = exported(observer)
    counts = {s.labels["topic"]: s.value for s in samples["seatflow_passed_over_rereads_total"]}
    assert counts["reservation-created"] == 2
    assert counts["seatflow.seat-facts"] == 1
    assert counts["order-placed"] == 0  # every topic exists from the start
