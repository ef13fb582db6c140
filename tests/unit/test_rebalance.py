"""Which records a batch may still process around a rebalance, and the wait before revocation."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from workers.rebalance import current_events, finish_in_hand_before_revocation, rebalance_over
from workers.shutdown import BatchGate


@dataclass
class Message:
    tp: str


@dataclass
class Event:
    message: Message


@dataclass
class Consumer:
    assigned: set[str] = field(default_factory=lambda: {"p1", "p2"})

    def assignment(self) -> set[str]:
        return self.assigned


@dataclass
class App:
    consumer: Consumer = field(default_factory=Consumer)
    rebalancing: bool = False
    should_stop: bool = False
    seatflow_gate: BatchGate = field(default_factory=BatchGate)
    revoked: list[Any] = field(default_factory=list)

    async def _on_partitions_revoked(self, revoked: Any) -> None:
        self.revoked.append((revoked, self.seatflow_gate.in_flight))


def events(*tps: str) -> list[Event]:
    return [Event(Message(tp)) for tp in tps]


def test_keeps_only_the_partitions_still_assigned() -> None:
    batch = events("p0", "p1", "p2", "p3")
    assert current_events(App(), batch) == [batch[1], batch[2]]


def test_nothing_while_a_rebalance_is_under_way() -> None:
    assert current_events(App(rebalancing=True), events("p1", "p2")) == []


async def test_rebalance_over_waits_for_the_flag() -> None:
    app = App(rebalancing=True)
    waiting = asyncio.create_task(rebalance_over(app, poll=0.001))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    app.rebalancing = False
    await asyncio.wait_for(waiting, 1)


async def test_revocation_waits_for_batches_in_hand() -> None:
    app = App()
    finish_in_hand_before_revocation(app, within=5, on_timeout=pytest.fail)
    finished = asyncio.Event()

    async def batch() -> None:
        async with app.seatflow_gate.batch():
            await finished.wait()

    task = asyncio.create_task(batch())
    await asyncio.sleep(0)
    revoking = asyncio.create_task(app._on_partitions_revoked({"tp"}))
    await asyncio.sleep(0.01)
    assert app.revoked == []  # Faust's handler has not run while the batch is in hand
    finished.set()
    await asyncio.wait_for(revoking, 1)
    await task
    assert app.revoked == [({"tp"}, 0)]


async def test_revocation_stops_the_process_when_a_batch_cannot_finish() -> None:
    app = App()
    timeouts: list[str] = []
    finish_in_hand_before_revocation(app, within=0.01, on_timeout=lambda w, _e: timeouts.append(w))
    never = asyncio.Event()

    async def batch() -> None:
        async with app.seatflow_gate.batch():
            await never.wait()

    task = asyncio.create_task(batch())
    await asyncio.sleep(0)
    await asyncio.wait_for(app._on_partitions_revoked({"tp"}), 1)
    assert timeouts == ["rebalance"]
    task.cancel()
