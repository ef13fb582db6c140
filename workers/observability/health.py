"""Readiness: is this worker doing its job right now, and if not, why.

Ready means all of:

- `partitions_assigned`: the group gave it partitions of the pipeline topics;
- `tables_recovered`: Faust finished restoring the seat table from its changelog and no
  rebalance is under way;
- `redis`, `postgres`: the sink answers a probe (its `positions()` read, through the same
  connect code as the worker's sink) and no write to it is being retried;
- `kafka`: no produce to Kafka is being retried;
- `not_paused`: no partition is paused (the retry policy pauses the partitions of a batch
  whose dependency fails; Faust pauses all of them while it recovers).

Probing the sinks on a timer, not only noticing failed writes, makes an outage visible on
an idle worker too, and its end visible without waiting for traffic. A failing write is
still the better signal while traffic flows: `Health.failing` (workers/retry.py) is read
at every check.

*Degraded* means a dependency is down or being retried, or a partition is paused outside
recovery: the worker is alive but not keeping up. It shows on /readyz and as
`seatflow_degraded` on /metrics.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from workers.observability.metrics import Check, WorkerState, dependency_of
from workers.settings import Settings
from workers.sinks.base import Sink

log = logging.getLogger("seatflow.health")

PROBE_INTERVAL_S = 2.0
PROBE_TIMEOUT_S = 2.0


class SinkProbe:
    """Keeps one small connection to a sink and reads its positions on every probe."""

    def __init__(self, name: str, connect: Callable[[], Awaitable[Sink]], topic: str) -> None:
        self.name = name
        self.connect = connect
        self.topic = topic
        self.sink: Sink | None = None
        self.ok = False
        self.detail = "not probed yet"

    async def probe(self) -> bool:
        try:
            if self.sink is None:
                self.sink = await asyncio.wait_for(self.connect(), PROBE_TIMEOUT_S)
            await asyncio.wait_for(self.sink.positions(self.topic), PROBE_TIMEOUT_S)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if self.ok or self.detail == "not probed yet":
                log.warning("%s probe failing: %s", self.name, detail)
            self.ok, self.detail = False, detail
            await self._drop()
            return False
        if not self.ok and self.detail != "not probed yet":
            log.warning("%s probe answers again", self.name)
        self.ok, self.detail = True, ""
        return True

    async def _drop(self) -> None:
        sink, self.sink = self.sink, None
        close = getattr(sink, "close", None)
        if close is not None:
            try:
                await asyncio.wait_for(close(), PROBE_TIMEOUT_S)
            except Exception:  # a broken connection may not close cleanly; it is dropped
                log.debug("closing the %s probe failed", self.name, exc_info=True)

    async def close(self) -> None:
        await self._drop()


def sink_probes(settings: Settings, facts_topic: str) -> dict[str, SinkProbe]:
    """Probes of both sinks, connecting exactly as the worker's sinks do."""
    from workers.sinks.postgres_sink import PostgresSink
    from workers.sinks.redis_sink import RedisSink

    async def postgres() -> Sink:
        return await PostgresSink.connect(settings, max_size=1)

    async def redis() -> Sink:
        return await RedisSink.connect(settings)

    return {
        "redis": SinkProbe("redis", redis, facts_topic),
        "postgres": SinkProbe("postgres", postgres, facts_topic),
    }


async def probe_forever(probes: Mapping[str, SinkProbe], interval: float) -> None:
    while True:
        await asyncio.gather(*(p.probe() for p in probes.values()))
        await asyncio.sleep(interval)


class Readiness:
    """Evaluates the checks from the Faust app, `Health` and the probes (cheap: no I/O)."""

    def __init__(
        self,
        app: Any,
        health: Any,
        probes: Mapping[str, SinkProbe],
        topics: Mapping[str, str],
    ) -> None:
        self.app = app
        self.health = health
        self.probes = probes
        self.topics = dict(topics)
        """Physical -> logical name of the topics whose partitions the worker consumes."""

    def _consumer(self) -> Any:
        # Faust creates its consumer lazily; asking for it before start would create one.
        return getattr(self.app, "_consumer", None)

    def _assigned(self) -> set[tuple[str, int]]:
        consumer = self._consumer()
        if consumer is None:
            return set()
        try:
            assignment = consumer.assignment()
        except Exception:  # not started yet
            return set()
        return {(tp.topic, tp.partition) for tp in assignment if tp.topic in self.topics}

    def _paused(self, assigned: set[tuple[str, int]]) -> set[tuple[str, int]]:
        paused: set[tuple[str, int]] = set()
        consumer = self._consumer()
        if consumer is not None:  # Faust's own set: recovery, flow control, the retry policy
            faust_paused = getattr(consumer, "_paused_partitions", ())
            paused |= {(tp.topic, tp.partition) for tp in faust_paused}
        paused |= set(getattr(self.health, "paused_partitions", ()) or ())
        return {tp for tp in paused if tp in assigned}

    def _recovered(self) -> tuple[bool, str]:
        app = self.app
        try:
            completed = app.tables.recovery.completed.is_set()
        except Exception:
            completed = False
        if not completed:
            return False, "table recovery not completed"
        if getattr(app, "in_recovery", False):
            return False, "recovering tables after a rebalance"
        if getattr(app, "rebalancing", False):
            return False, "rebalancing"
        return True, ""

    def state(self) -> WorkerState:
        failing: dict[str, str] = dict(getattr(self.health, "failing", {}) or {})
        by_dependency: dict[str, list[str]] = {}
        for operation, error in failing.items():
            by_dependency.setdefault(dependency_of(operation), []).append(f"{operation}: {error}")
        assigned = self._assigned()
        paused = self._paused(assigned)
        recovered, why = self._recovered()
        checks = [
            Check(
                "partitions_assigned",
                bool(assigned),
                "" if assigned else "no partition of the pipeline topics is assigned",
            ),
            Check("tables_recovered", recovered, why),
        ]
        sinks_up: dict[str, bool] = {}
        for name in ("redis", "postgres"):
            probe = self.probes.get(name)
            problems = list(by_dependency.get(name, []))
            if probe is not None and not probe.ok:
                problems.insert(0, f"probe: {probe.detail}")
            sinks_up[name] = not problems
            checks.append(Check(name, not problems, "; ".join(problems)))
        kafka = by_dependency.get("kafka", [])
        checks.append(Check("kafka", not kafka, "; ".join(kafka)))
        checks.append(
            Check(
                "not_paused",
                not paused,
                ", ".join(f"{t}/{p}" for t, p in sorted(paused)) if paused else "",
            )
        )
        assigned_by_topic = dict.fromkeys(self.topics.values(), 0)
        paused_by_topic = dict.fromkeys(self.topics.values(), 0)
        for topic, _ in assigned:
            assigned_by_topic[self.topics[topic]] += 1
        for topic, _ in paused:
            paused_by_topic[self.topics[topic]] += 1
        degraded = bool(failing) or not all(sinks_up.values()) or (bool(paused) and recovered)
        return WorkerState(
            checks=checks,
            degraded=degraded,
            sinks_up=sinks_up,
            assigned=assigned_by_topic,
            paused=paused_by_topic,
            failing=failing,
        )


def readiness_body(state: WorkerState) -> dict[str, Any]:
    """The JSON of /readyz: every check, and what is failing or paused."""
    return {
        "status": "ready" if state.ready else "not_ready",
        "degraded": state.degraded,
        "checks": {
            c.name: {"ok": c.ok, **({"detail": c.detail} if c.detail else {})} for c in state.checks
        },
        "failing": state.failing,
        "paused_partitions": {t: n for t, n in state.paused.items() if n},
    }
