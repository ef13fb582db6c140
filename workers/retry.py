"""Retrying a step that must eventually succeed: capped exponential backoff with jitter.

A sink or broker that is down is waited for, never skipped: the batch in hand is kept and
its offsets are not acknowledged until the step succeeds. Only failures that `classify`
calls RETRY are retried; anything else propagates at once, so a defect stops the worker
instead of looping forever in silence (see `workers.errors`).

While a step is failing, the partitions of its batch are paused: nothing of them is
acknowledged and their agent takes no new batch; `Health` lists them and says the worker is
degraded, and its `PartitionControl` is told (the worker's control only records it: Faust's
own pause would drop records it already fetched, see `workers.app._ConsumerPauser`).
Logging is once per change of state (failing / recovered), not once per attempt, so an
outage of an hour is two lines.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from workers.errors import Policy, classify, describe

T = TypeVar("T")

Partition = tuple[str, int]
"""(topic, partition): kept as a plain tuple so that this module needs no Faust import."""


@dataclass(frozen=True, slots=True)
class Backoff:
    initial: float = 0.1
    maximum: float = 10.0
    multiplier: float = 2.0

    def delay(self, attempt: int) -> float:
        """Equal jitter: uniform in [ceiling / 2, ceiling], ceiling = min(maximum, initial *
        multiplier**attempt). Never zero, so a dead dependency is not hammered, and spread,
        so that workers recovering together do not retry in lockstep."""
        ceiling = min(self.maximum, self.initial * self.multiplier ** min(attempt, 64))
        return random.uniform(ceiling / 2, ceiling)


class PartitionControl(Protocol):
    """Pauses and resumes fetching from partitions (the Faust consumer, in the worker)."""

    def pause(self, partitions: Collection[Partition]) -> None: ...

    def resume(self, partitions: Collection[Partition]) -> None: ...


@dataclass(slots=True)
class Health:
    """What the worker knows about its dependencies; read by metrics and /readyz.

    `failing` maps each failing step to its last error; `paused` maps it to the partitions
    paused on its behalf. A partition paused by two failing steps (both sinks down during
    one batch) is resumed when the last of them recovers.
    """

    failing: dict[str, str] = field(default_factory=dict)
    paused: dict[str, frozenset[Partition]] = field(default_factory=dict)
    control: PartitionControl | None = None

    @property
    def degraded(self) -> bool:
        return bool(self.failing)

    @property
    def paused_partitions(self) -> frozenset[Partition]:
        """Every partition paused now, whichever step paused it."""
        return frozenset().union(*self.paused.values())

    def mark_failing(
        self, what: str, error: str, partitions: Collection[Partition] = ()
    ) -> frozenset[Partition]:
        """Record that `what` fails; pause `partitions`; return those newly paused."""
        self.failing[what] = error
        newly = frozenset(partitions) - self.paused_partitions
        self.paused[what] = self.paused.get(what, frozenset()) | frozenset(partitions)
        if newly and self.control is not None:
            self.control.pause(newly)
        return newly

    def mark_recovered(self, what: str) -> frozenset[Partition]:
        """Record that `what` works again; resume the partitions no other step holds."""
        self.failing.pop(what, None)
        mine = self.paused.pop(what, frozenset())
        released = mine - self.paused_partitions
        if released and self.control is not None:
            self.control.resume(released)
        return released


def _show(partitions: Collection[Partition]) -> str:
    return ", ".join(f"{t}/{p}" for t, p in sorted(partitions)) or "none"


async def retry_until_done(
    step: Callable[[], Awaitable[T]],
    *,
    what: str,
    log: logging.Logger,
    health: Health | None = None,
    backoff: Backoff = Backoff(),
    partitions: Collection[Partition] = (),
    policy: Callable[[BaseException], Policy] = classify,
) -> T:
    """Run `step` until it returns; retry the failures `policy` calls RETRY.

    Any other exception propagates unchanged (the caller's STOP path), as does
    cancellation. `partitions` are those of the batch the step belongs to: paused while it
    fails, resumed when it succeeds.
    """
    attempt = 0
    started = 0.0
    failing = False
    try:
        while True:
            try:
                result = await step()
                break
            except Exception as exc:
                if policy(exc) is not Policy.RETRY:
                    raise
                if not failing:
                    failing, started = True, time.monotonic()
                    if health is not None:
                        health.mark_failing(what, describe(exc), partitions)
                    log.warning("%s failing, retrying with backoff (paused: %s): %s", what,
                                _show(partitions), describe(exc))  # fmt: skip
                elif health is not None:
                    health.failing[what] = describe(exc)
            await asyncio.sleep(backoff.delay(attempt))
            attempt += 1
    except BaseException:
        # A defect after transient failures, or cancellation (shutdown, rebalance) while
        # waiting: this step no longer holds anything; the caller's path takes over.
        if failing and health is not None:
            health.mark_recovered(what)
        raise
    if failing:
        resumed = health.mark_recovered(what) if health is not None else frozenset()
        log.warning("%s recovered after %d attempts in %.1fs (resumed: %s)", what,
                    attempt + 1, time.monotonic() - started, _show(resumed))  # fmt: skip
    return result
