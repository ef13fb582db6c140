"""Graceful shutdown of the worker: finish the batch in hand, commit, leave, within a bound.

Faust's own SIGTERM handling stops the app at once: agents are cancelled in the middle of
their batch. That is safe (nothing unapplied is acknowledged, so it is read again after a
restart) but wasteful, and a rolling deploy would redo up to one batch per agent every
time. So on the first SIGTERM or SIGINT the worker

1. stops fetching and closes the `BatchGate`: agents finish the batch they hold (its
   changelog, sinks and acknowledgement) but take no new one; a batch an agent receives
   after that is parked unacknowledged;
2. waits for the batches in hand, at most `shutdown_timeout_s` minus a reserve for step 3;
3. commits the acknowledged offsets, then lets Faust stop (its consumer leaves the group,
   so the partitions move to the other workers at once instead of after the session
   timeout) and exits 0.

If a batch does not finish in time (a sink is down and being retried, say), Faust's stop
cancels it unacknowledged and the process exits `SHUTDOWN_TIMEOUT_EXIT_CODE`. A watchdog
thread enforces the bound whatever happens, with the same code. A second signal exits at
once with 128 + the signal number. Neither corrupts anything: an offset is acknowledged
only after everything its record feeds is durable, and each sink applies a batch
atomically with its positions, so whatever was cut short is applied again, exactly once,
after the restart.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import faust

log = logging.getLogger("seatflow.shutdown")

SHUTDOWN_TIMEOUT_EXIT_CODE = 75  # EX_TEMPFAIL: stopped late; the batch in hand is redone
RESERVE_S = 3.0
"""Of the bound, what is kept for Faust's own stop (commit, leave the group, close)."""


class BatchGate:
    """Lets agents start batches until the worker drains; counts the batches in hand."""

    def __init__(self) -> None:
        self.draining = False
        self._in_flight = 0
        self._idle: asyncio.Event | None = None

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[None]:
        """Around one batch: processing and acknowledgement. Parks forever once draining."""
        if self.draining:
            # Not started, not acknowledged: Faust's stop cancels this wait, and the
            # records are read again by whoever owns the partition next.
            await asyncio.Event().wait()
        self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1
            if not self._in_flight and self._idle is not None:
                self._idle.set()

    def close(self) -> None:
        """No new batches from now on."""
        self.draining = True

    async def wait_idle(self, within: float) -> bool:
        """Until no batch is in hand; False if that took longer than `within` seconds."""
        if not self._in_flight:
            return True
        self._idle = asyncio.Event()
        try:
            await asyncio.wait_for(self._idle.wait(), max(within, 0.0))
        except TimeoutError:
            return False
        return True


class GracefulWorker(faust.Worker):
    """faust.Worker whose SIGTERM/SIGINT drains first, bounded, and exits on a second one."""

    def __init__(self, app: faust.App, *, gate: BatchGate, timeout: float, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.gate = gate
        self.timeout = timeout
        self.exit_code = 0
        self._signalled_at: float | None = None

    def install_signal_handlers(self) -> None:
        """mode's loop handlers, but SIGTERM/SIGINT as plain handlers (see `_on_signal`)."""
        super().install_signal_handlers()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.remove_signal_handler(sig)
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        """Runs in the main thread at once, even while the event loop is busy with a batch:
        the bound counts from the signal, and a second signal is never queued behind work.
        """
        sig = signal.Signals(signum)
        if self._signalled_at is not None:
            _exit_now(sig)
        self._signalled_at = time.monotonic()
        watchdog = threading.Timer(self.timeout, self._too_late)
        watchdog.daemon = True
        watchdog.start()
        self.loop.call_soon_threadsafe(self._begin_drain, sig)

    def _begin_drain(self, sig: signal.Signals) -> None:
        self.add_future(self._drain_then_stop(sig))

    async def _drain_then_stop(self, sig: signal.Signals) -> None:
        started = self._signalled_at or time.monotonic()
        budget = self.timeout - min(RESERVE_S, self.timeout / 2)
        log.info("%s: draining: no new batches; finishing %d in hand (at most %.1fs)",
                 sig.name, self.gate.in_flight, budget)  # fmt: skip
        self.gate.close()
        self._stop_fetching()
        if await self.gate.wait_idle(budget - (time.monotonic() - started)):
            try:
                committed = await asyncio.wait_for(self.app.consumer.commit(), RESERVE_S / 2)
            except Exception as exc:  # the stop below commits again; the bound still holds
                log.warning("commit after drain failed: %s: %s", type(exc).__name__, exc)
            else:
                log.info("drained in %.2fs: batches in hand finished and acknowledged, "
                         "offsets committed%s", time.monotonic() - started,
                         "" if committed else " (nothing new)")  # fmt: skip
        else:
            self.exit_code = SHUTDOWN_TIMEOUT_EXIT_CODE
            log.warning("%d batch(es) still in hand after %.1fs: stopping without "
                        "acknowledging them (they are processed again after a restart)",
                        self.gate.in_flight, budget)  # fmt: skip
        # Faust's own stop: agents cancelled (all idle or parked now), consumer commits
        # what is acknowledged and leaves the group, producer flushed.
        if sig is signal.SIGINT:
            faust.Worker._on_sigint(self)
        else:
            faust.Worker._on_sigterm(self)

    def _stop_fetching(self) -> None:
        """No more records to the streams. Only the flow: `pause_partitions` would make
        Faust drop records it already fetched (harmless when nothing resumes, but a gap
        that later records would paper over is not worth risking)."""
        with suppress(Exception):  # not started yet: nothing is being fetched
            self.app.consumer.stop_flow()

    def _too_late(self) -> None:
        """Watchdog thread: the bound is a promise to the orchestrator; keep it."""
        _write_stderr(
            f"seatflow worker: not stopped {self.timeout:.1f}s after the signal "
            "(SEATFLOW_SHUTDOWN_TIMEOUT_S); exiting now, unfinished batches unacknowledged\n"
        )
        os._exit(SHUTDOWN_TIMEOUT_EXIT_CODE)

    def since_signal(self) -> float | None:
        """Seconds since the first stop signal, None if none came."""
        return None if self._signalled_at is None else time.monotonic() - self._signalled_at


def _exit_now(sig: signal.Signals) -> None:
    """Second signal: out at once. Nothing unapplied was acknowledged, so nothing is lost."""
    _write_stderr(f"seatflow worker: second {sig.name}: exiting at once\n")
    os._exit(128 + sig.value)


def _write_stderr(text: str) -> None:
    # os.write, not logging: this runs in a signal handler or a thread while the main
    # thread may hold the logging locks.
    with suppress(OSError):
        os.write(2, text.encode())
