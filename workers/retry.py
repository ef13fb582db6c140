"""Retrying a step that must eventually succeed: capped exponential backoff with jitter.

A sink or broker that is down is waited for, never skipped: the batch in hand is kept and
its offsets are not acknowledged until the step succeeds. Logging is once per change of
state (failing / recovered), not once per attempt, so an outage of an hour is two lines.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Backoff:
    initial: float = 0.1
    maximum: float = 10.0
    multiplier: float = 2.0

    def delay(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(maximum, initial * multiplier**attempt)]."""
        ceiling = min(self.maximum, self.initial * self.multiplier**attempt)
        return random.uniform(ceiling / 2, ceiling)


class Health:
    """What the worker knows about its dependencies; read by metrics and /readyz later."""

    def __init__(self) -> None:
        self.failing: dict[str, str] = {}

    @property
    def degraded(self) -> bool:
        return bool(self.failing)


async def retry_until_done(
    step: Callable[[], Awaitable[T]],
    *,
    what: str,
    log: logging.Logger,
    health: Health | None = None,
    backoff: Backoff = Backoff(),
) -> T:
    """Run `step` until it returns; every exception but cancellation is retried."""
    attempt = 0
    started = 0.0
    while True:
        try:
            result = await step()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if attempt == 0:
                started = time.monotonic()
                log.warning("%s failing, retrying with backoff: %s: %s", what,
                            type(exc).__name__, exc)  # fmt: skip
                if health is not None:
                    health.failing[what] = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(backoff.delay(attempt))
            attempt += 1
            continue
        if attempt:
            log.warning("%s recovered after %d attempts in %.1fs", what, attempt + 1,
                        time.monotonic() - started)  # fmt: skip
            if health is not None:
                health.failing.pop(what, None)
        return result
