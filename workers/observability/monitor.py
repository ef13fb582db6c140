"""The worker's monitor: a Faust sensor that also runs the HTTP server, lag and probes.

Faust starts sensors first and stops them last, before table recovery: /healthz and
/metrics are up while a long changelog recovery runs (an app task would start only after
it), and they stay up until the consumer has stopped. The sensor hooks give what only
Faust knows: rebalances (start to streams resumed) and completed commits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

import faust
from faust.types import AppT, ConsumerT

from workers.observability.health import (
    PROBE_INTERVAL_S,
    Readiness,
    probe_forever,
    sink_probes,
)
from workers.observability.lag import LagMeter, measure_forever, pipeline_topics
from workers.observability.metrics import Observer
from workers.observability.server import serve
from workers.settings import Settings
from workers.topic_catalog import TopicCatalog

log = logging.getLogger("seatflow.metrics")

TABLE_SIZE_INTERVAL_S = 15.0


def table_keys(table: Any) -> int:
    """Keys in the table's active partitions: RocksDB's estimate (len() would scan every
    key), the exact count for the memory store."""
    store = table.data
    dbs_for_actives = getattr(store, "_dbs_for_actives", None)
    if dbs_for_actives is None:
        return len(store)
    total = 0
    for db in dbs_for_actives():
        value = db.property_int_value("rocksdb.estimate-num-keys")
        total += int(value or 0)
    return total


class Monitor(faust.Sensor):
    """Sensor hooks plus the services behind /metrics, /healthz and /readyz."""

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        catalog: TopicCatalog,
        health: Any,
        observer: Observer,
        tables: Iterable[Any] = (),
        **kwargs: Any,
    ) -> None:
        self.app = app
        self.settings = settings
        self.observer = observer
        self.tables = list(tables)
        topics = pipeline_topics(catalog)
        facts_topic = catalog.get("seatflow.seat-facts").name
        self.probes = sink_probes(settings, facts_topic)
        self.readiness = Readiness(app, health, self.probes, topics)
        self.meter = LagMeter.for_settings(settings, catalog)
        self.runner: Any = None
        self.tasks: list[asyncio.Future[None]] = []
        observer.watch(health)
        observer.read_state_with(self.readiness.state)
        super().__init__(**kwargs)

    # ---------------------------------------------------------------- mode.Service
    async def on_start(self) -> None:
        s = self.settings
        self.runner = await serve(
            s.metrics_host, s.metrics_port, self.observer.registry, self.readiness.state
        )
        if self.runner is None:
            return  # nobody can read them: no lag clients, no sink probes
        self.tasks = [
            asyncio.ensure_future(
                measure_forever(
                    self.meter, s.lag_interval_s, self.observer.lag_measured,
                    self.observer.lag_failed,
                )
            ),
            asyncio.ensure_future(probe_forever(self.probes, PROBE_INTERVAL_S)),
        ]  # fmt: skip
        if self.tables:
            self.tasks.append(asyncio.ensure_future(self._sample_tables()))

    async def on_stop(self) -> None:
        # The loops first: a measurement in flight must not reopen clients closed below.
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks = []
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        for closing in (self.meter.close(), *(p.close() for p in self.probes.values())):
            try:
                await asyncio.wait_for(closing, 5)
            except Exception:  # shutting down: a client that will not close is abandoned
                log.debug("closing a monitor client failed", exc_info=True)

    async def _sample_tables(self) -> None:
        while True:
            for table in self.tables:
                try:
                    self.observer.table_keys.labels(table.name).set(table_keys(table))
                except Exception:  # a store that is closing or not open yet: next time
                    log.debug("table size of %s unavailable", table.name, exc_info=True)
            await asyncio.sleep(TABLE_SIZE_INTERVAL_S)

    # ---------------------------------------------------------------- faust.Sensor
    def on_rebalance_start(self, app: AppT) -> dict[str, Any]:
        self.observer.rebalance_started()
        return {"time_start": time.monotonic()}

    def on_rebalance_end(self, app: AppT, state: dict[str, Any]) -> None:
        started = state.get("time_start") if isinstance(state, dict) else None
        if started is not None:
            self.observer.rebalance_ended(time.monotonic() - started)

    def on_commit_completed(self, consumer: ConsumerT, state: Any) -> None:
        self.observer.committed()


def instrument(
    app: faust.App,
    settings: Settings,
    catalog: TopicCatalog,
    health: Any,
    observer: Observer,
    tables: Iterable[Any] = (),
) -> Monitor:
    """Attach the monitor to `app` (before it starts)."""
    monitor = Monitor(app, settings, catalog, health, observer, tables)
    app.sensors.add(monitor)
    return monitor
