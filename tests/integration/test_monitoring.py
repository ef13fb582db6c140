"""Monitoring on the real services: a real Prometheus scraping a worker, lag, DLQ, readiness.

The worker serves /metrics, /healthz and /readyz on a free port; Prometheus (the Debian
binary `scripts/services up` installs) runs as a process of the test with a config made
from docker/prometheus/prometheus.yml (1 s scrape and rule intervals, the shipped alert
rules) and its data in a temporary directory.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
import yaml
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from tests.integration.conftest import SettingsFactory
from tests.integration.harness import SEATFLOW, WorkerProcess, produce, run_cli, settings_env
from tests.integration.harness import wait_drained as wait_committed
from tests.integration.private_services import PrivatePostgres, free_port
from tests.monitoring_files import (
    ALERTS,
    ALERTS_TEST,
    PROMETHEUS_CONFIG,
    alert_exprs,
    alert_rules,
    dashboard_exprs,
)
from workers.kafka_clients import client_kwargs
from workers.loadgen.scenario import ScenarioShape, UpstreamRecord, scenario
from workers.observability.lag import measure
from workers.settings import Settings
from workers.topic_catalog import load_catalog

pytestmark = pytest.mark.integration

T = TypeVar("T")
SMALL = ScenarioShape(concert_events=1, seats_per_event=60, reservations=150)
BAD = [
    UpstreamRecord("reservation-created", b"bad-1", b"{not json"),
    UpstreamRecord("reservation-created", b"bad-2", b"\xff\xfe"),
    UpstreamRecord("reservation-created", b"bad-3", b"[1, 2"),
    UpstreamRecord("reservation-created", b"bad-4", b"{}"),
    UpstreamRecord("reservation-created", b"bad-5", b'{"reservationId": 5}'),
]
BAD_REASONS = {"undecodable": 3, "schema_violation": 2}


# ---------------------------------------------------------------- helpers
async def eventually(
    probe: Callable[[], Awaitable[T | None]], what: str, within: float = 60, every: float = 0.5
) -> T:
    """Until `probe()` returns something truthy; its last value names the failure."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = await probe()
        except (aiohttp.ClientError, OSError) as exc:
            last = exc
        else:
            if last:
                return last
        await asyncio.sleep(every)
    raise AssertionError(f"{what} not reached in {within}s; last: {last!r}")


async def get(port: int, path: str) -> tuple[int, str]:
    timeout = aiohttp.ClientTimeout(total=5)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(f"http://127.0.0.1:{port}{path}") as response,
    ):
        return response.status, await response.text()


async def scrape(port: int) -> dict[str, list[Any]]:
    """Samples of /metrics by sample name (counters keep their `_total`)."""
    status, text = await get(port, "/metrics")
    assert status == 200
    out: dict[str, list[Any]] = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name].append(sample)
    return out


def value(samples: dict[str, list[Any]], name: str, **labels: str) -> float | None:
    matching = [
        s.value
        for s in samples.get(name, [])
        if all(s.labels.get(k) == v for k, v in labels.items())
    ]
    return sum(matching) if matching else None


def monitored(settings_factory: SettingsFactory, **overrides: Any) -> Settings:
    return settings_factory(
        metrics_port=free_port(), metrics_host="127.0.0.1", lag_interval_s=1.0, **overrides
    )


class Prometheus:
    """A real Prometheus server scraping one target with the shipped rules."""

    def __init__(self, workdir: Path, target: str) -> None:
        self.port = free_port()
        self.dir = workdir / "prometheus"
        self.dir.mkdir()
        config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
        config["global"].update(scrape_interval="1s", evaluation_interval="1s")
        config["rule_files"] = [str(ALERTS)]
        (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "seatflow"]
        job.pop("dns_sd_configs", None)
        job["static_configs"] = [{"targets": [target]}]
        config["scrape_configs"] = [job]
        (self.dir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("prometheus")
        assert binary, "prometheus is not installed: run scripts/services up"
        self.proc = subprocess.Popen(
            [binary, f"--config.file={self.dir / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.dir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=(self.dir / "log").open("wb"), stderr=subprocess.STDOUT,
        )  # fmt: skip

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)

    async def api(self, path: str, **params: str) -> Any:
        timeout = aiohttp.ClientTimeout(total=10)
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url, params=params) as response,
        ):
            body = await response.json()
        assert body["status"] == "success", body
        return body["data"]

    async def query(self, expr: str) -> list[Any]:
        return list((await self.api("query", query=expr))["result"])


async def ready_status(port: int) -> tuple[int, dict[str, Any]]:
    status, text = await get(port, "/readyz")
    return status, json.loads(text)


# ---------------------------------------------------------------- promtool
def test_promtool_checks_the_rules_and_their_unit_tests_pass() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed: run scripts/services up"
    for args in (
        ["check", "rules", str(ALERTS)],
        ["check", "config", str(PROMETHEUS_CONFIG)],
        ["test", "rules", str(ALERTS_TEST)],
    ):
        done = subprocess.run([promtool, *args], capture_output=True, text=True, check=False)
        assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    assert len(alert_rules()) >= 5


# ---------------------------------------------------------------- Prometheus
async def test_prometheus_scrapes_a_worker_and_every_dashboard_and_alert_query_has_data(
    settings_factory: SettingsFactory, tmp_path: Path
) -> None:
    settings = monitored(settings_factory)
    port = settings.metrics_port
    assert run_cli(settings, "topics", "apply").returncode == 0
    await produce(settings, scenario(seed=21, shape=SMALL))

    worker = WorkerProcess(settings, tmp_path)
    prometheus = Prometheus(tmp_path, f"127.0.0.1:{port}")
    worker.start()
    prometheus.start()
    try:
        await eventually(lambda: get(port, "/healthz"), "/healthz answering")
        await wait_committed(settings, worker, within=120)

        up = 'up{job="seatflow"} == 1'
        await eventually(lambda: prometheus.query(up), "prometheus scraping the worker")

        # bad inputs raise the dead-letter counter, by their bounded reason
        await produce(settings, BAD)

        async def dead_letters() -> dict[str, float] | None:
            samples = await scrape(port)
            got = {
                reason: value(samples, "seatflow_dead_letters_total",
                              topic="reservation-created", reason=reason)
                for reason in BAD_REASONS
            }  # fmt: skip
            return got if got == BAD_REASONS else None

        await eventually(dead_letters, "dead letters counted by reason", within=30)
        samples = await scrape(port)
        assert value(samples, "seatflow_ready") == 1
        assert value(samples, "seatflow_sink_applied_facts_total", sink="postgres")

        # every expression of the dashboard and of the alert rules returns data
        queries = dashboard_exprs() + alert_exprs()

        async def all_have_data() -> bool:
            empty = [(what, q) for what, q in queries if not await prometheus.query(q)]
            all_have_data.empty = empty  # type: ignore[attr-defined]
            return not empty

        try:
            await eventually(all_have_data, "data for every query", within=60, every=2)
        except AssertionError:
            empty = all_have_data.empty  # type: ignore[attr-defined]
            raise AssertionError(f"queries without data: {empty}") from None

        rules = await prometheus.api("rules")
        loaded = [r for g in rules["groups"] for r in g["rules"]]
        assert {r["name"] for r in loaded} == {r["alert"] for r in alert_rules()}
        errors = [(r["name"], r.get("lastError")) for r in loaded if r["health"] != "ok"]
        assert not errors, errors

        async def dead_letter_alerts() -> set[str] | None:
            alerts = (await prometheus.api("alerts"))["alerts"]
            firing = {
                a["labels"]["reason"] for a in alerts
                if a["labels"]["alertname"] == "SeatflowDeadLetters" and a["state"] == "firing"
            }  # fmt: skip
            down = [a for a in alerts if a["labels"]["alertname"] == "SeatflowWorkerDown"]
            assert not down, down
            return firing if firing == set(BAD_REASONS) else None

        await eventually(dead_letter_alerts, "SeatflowDeadLetters firing per reason", within=30)
    finally:
        prometheus.stop()
        worker.stop()


# ---------------------------------------------------------------- lag
async def produce_with_metadata(
    settings: Settings, records: Sequence[UpstreamRecord]
) -> list[tuple[str, int, int]]:
    """Produce like the harness; return (logical topic, partition, timestamp ms) of each."""
    catalog = load_catalog(settings)
    producer = AIOKafkaProducer(**client_kwargs(settings), linger_ms=5, acks="all")
    await producer.start()
    try:
        futures = []
        for record in records:
            spec = catalog.get(record.topic)
            futures.append(
                await producer.send(
                    spec.name,
                    record.value,
                    key=record.key,
                    partition=record.partition(spec.partitions),
                )
            )
        metadata = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [(r.topic, m.partition, m.timestamp) for r, m in zip(records, metadata, strict=True)]


def start_exporter(settings: Settings, port: int, log: Path) -> subprocess.Popen[bytes]:
    """`seatflow lag --serve` in a subprocess."""
    return subprocess.Popen(
        [SEATFLOW, "lag", "--serve", "--port", str(port)], env=settings_env(settings),
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip


async def test_lag_counts_messages_and_seconds_while_stopped_and_returns_to_zero(
    settings_factory: SettingsFactory, tmp_path: Path
) -> None:
    settings = monitored(settings_factory)
    assert run_cli(settings, "topics", "apply").returncode == 0
    records = scenario(seed=8, shape=SMALL)
    warmup, later = records[:40], records[40:]

    # the group has run and committed everything, then the worker is stopped
    worker = WorkerProcess(settings, tmp_path)
    worker.start()
    try:
        await produce(settings, warmup)
        await wait_committed(settings, worker, within=120)
    finally:
        worker.stop()
    assert not worker.alive()

    produced = await produce_with_metadata(settings, later)
    expected = Counter((topic, partition) for topic, partition, _ in produced)
    oldest: dict[tuple[str, int], int] = {}
    for topic, partition, ts in produced:
        oldest[(topic, partition)] = min(ts, oldest.get((topic, partition), ts))
    await asyncio.sleep(2)  # the oldest record is at least 2 s old

    before = time.time()
    m = await measure(settings)
    after = time.time()
    assert m.total() == len(later)
    got = {(p.topic, p.partition): p.messages for p in m.partitions if p.messages}
    assert got == dict(expected)
    for p in m.partitions:
        if not p.messages:
            assert p.seconds == 0
            continue
        ts = oldest[(p.topic, p.partition)] / 1000
        assert p.seconds is not None
        assert before - ts - 0.002 <= p.seconds <= after - ts + 0.002, (p, ts)
        assert p.seconds >= 2
    assert m.staleness is not None and m.staleness >= 2

    cli = run_cli(settings, "lag", "--json")
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["total_messages"] == len(later)

    # the standalone exporter reports it on /metrics while no worker runs
    exporter_port = free_port()
    exporter = start_exporter(settings, exporter_port, tmp_path / "exporter.log")
    try:

        async def exported_lag(port: int, total: int) -> dict[str, list[Any]] | None:
            samples = await scrape(port)
            lag = value(samples, "seatflow_consumer_lag_messages", group=settings.consumer_group)
            return samples if lag == total else None

        samples = await eventually(
            lambda: exported_lag(exporter_port, len(later)), "exporter reporting the lag"
        )
        ages = {
            (s.labels["topic"], int(s.labels["partition"])): s.value
            for s in samples["seatflow_consumer_lag_seconds"]
        }
        for key, ts in oldest.items():
            assert ages[key] >= time.time() - 1 - ts / 1000 - 0.5  # at least the age, 1 s interval

        # the worker drains; its lag metric (and the exporter's) return to 0
        worker.start()
        await wait_committed(settings, worker, within=120)

        async def zero(port: int) -> bool:
            samples = await exported_lag(port, 0)
            if samples is None:
                return False
            seconds = [s.value for s in samples["seatflow_consumer_lag_seconds"]]
            stale = value(samples, "seatflow_projection_staleness_seconds")
            return all(v == 0 for v in seconds) and stale == 0

        await eventually(lambda: zero(settings.metrics_port), "worker lag back to 0", within=30)
        await eventually(lambda: zero(exporter_port), "exporter lag back to 0", within=30)
    finally:
        exporter.send_signal(signal.SIGTERM)
        exporter.wait(timeout=30)
        worker.stop()
    assert exporter.returncode == 0


# ---------------------------------------------------------------- readiness
async def test_readyz_flips_to_not_ready_when_postgres_stops_and_back_when_it_returns(
    private_postgres: PrivatePostgres, settings_factory: SettingsFactory, tmp_path: Path
) -> None:
    settings = monitored(settings_factory, postgres_dsn=SecretStr(private_postgres.dsn))
    port = settings.metrics_port
    assert run_cli(settings, "topics", "apply").returncode == 0
    records = scenario(seed=4, shape=SMALL)
    first, during = records[:100], records[100:]

    worker = WorkerProcess(settings, tmp_path)
    worker.start()
    try:
        await eventually(lambda: get(port, "/healthz"), "/healthz answering")
        assert (await get(port, "/healthz"))[0] == 200

        async def ready(want: int) -> dict[str, Any] | None:
            status, body = await ready_status(port)
            return body if status == want else None

        body = await eventually(lambda: ready(200), "ready", within=90)
        assert body["status"] == "ready" and not body["degraded"]
        await produce(settings, first)
        await wait_committed(settings, worker, within=120)

        private_postgres.stop()
        await produce(settings, during)  # events flow while PostgreSQL is down
        body = await eventually(lambda: ready(503), "not ready", within=30)
        assert body["status"] == "not_ready"
        assert not body["checks"]["postgres"]["ok"], body
        assert body["checks"]["redis"]["ok"], body
        assert body["degraded"]

        async def degraded_metrics() -> dict[str, list[Any]] | None:
            samples = await scrape(port)
            retried = value(samples, "seatflow_batches_retried_total", dependency="postgres")
            return samples if retried else None

        samples = await eventually(degraded_metrics, "a postgres retry counted", within=30)
        assert value(samples, "seatflow_ready") == 0
        assert value(samples, "seatflow_degraded") == 1
        assert value(samples, "seatflow_health_check", check="postgres") == 0
        assert value(samples, "seatflow_sink_up", sink="postgres") == 0
        assert value(samples, "seatflow_sink_up", sink="redis") == 1
        assert value(samples, "seatflow_dependency_retrying", dependency="postgres") == 1

        private_postgres.start()
        body = await eventually(lambda: ready(200), "ready again", within=60)
        assert not body["degraded"]
        # (catching up after the outage is the outage tests' subject, not this one's)
        samples = await scrape(port)
        assert value(samples, "seatflow_ready") == 1
        assert value(samples, "seatflow_sink_up", sink="postgres") == 1
        assert value(samples, "seatflow_paused_partitions") == 0
    finally:
        worker.stop()
