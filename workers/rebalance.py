"""Finish the records in hand before a rebalance takes partitions away.

Faust's revocation handler revokes the table partitions first and only then (with
`stream_wait_empty`) waits for the records agents already hold. A seat batch still in
hand at that point would write seat states into a revoked partition: its RocksDB store is
gone (re-opening it fails on its lock), and its changelog record could land *after* the
new owner's, leaving the compacted changelog with a stale state that later batches would
diff against. `stream_wait_empty` is off because shutdown drains its own way
(workers/shutdown.py), so this hook puts a wait where it belongs: before Faust's
handler runs, every batch an agent has in hand (counted by the shutdown gate) is finished,
i.e. applied to the table, its changelog and both sinks, and acknowledged. A batch that
cannot finish in time (a dependency is down during a rebalance) stops the process without
acknowledging anything: restarted, it resumes at the last commit.

The wait covers batches in hand; `current_events` covers the rest. Records fetched before
a rebalance can still sit in an agent's take buffer and come out as a batch during or after
it, for a partition that may now belong to another worker. A batch that comes out while a
rebalance is under way first waits for it to end (`rebalance_over`, outside the gate, or
the revocation wait would wait for it), then keeps only the records of partitions this
worker is still assigned. That check runs inside the shutdown gate with no await before
it, so a batch that passes it is one the next revocation wait will wait for.

Records of a partition still assigned are kept even if fetched in an earlier generation:
reading them again is harmless (the same records at the same positions), whereas dropping
them is not: Faust's recovery seeks only partitions with a committed offset above 0 back,
so a dropped record of a partition with no commit yet would never be read again and the
partition would stall (seen in the scale-out test). Dropped records of a partition that
moved are not acknowledged; its new owner reads them from the committed offset.

Not covered: a worker that is thrown out of the group without being told (its event loop
blocked past the session timeout) is a zombie until it notices; only transactional
fencing would stop its last writes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

log = logging.getLogger("seatflow.rebalance")

E = TypeVar("E")


async def rebalance_over(app: Any, poll: float = 0.02) -> None:
    """Until no rebalance is under way (Faust clears the flag once its tables recovered and
    its streams were sought back to the committed offsets)."""
    while app.rebalancing:  # noqa: ASYNC110 - Faust exposes a flag, not an event
        await asyncio.sleep(poll)


def current_events(app: Any, events: Sequence[E]) -> list[E]:
    """The events of `events` whose partitions this worker is assigned now. Synchronous on
    purpose: called first thing inside the gate, so no rebalance can start in between.

    A rebalance that started since `rebalance_over` returned empties the batch: it resets
    every fetch position (Kafka's eager protocol), so the records are read again by
    whoever owns their partitions once it is over.
    """
    if app.rebalancing:
        return []
    assigned = app.consumer.assignment()
    return [e for e in events if e.message.tp in assigned]  # type: ignore[attr-defined]


def finish_in_hand_before_revocation(
    app: Any, within: float, on_timeout: Callable[[str, BaseException], None]
) -> None:
    """Wrap the app's revocation handler (before its consumer exists, which captures it)."""
    original: Callable[[Any], Awaitable[None]] = app._on_partitions_revoked

    async def on_partitions_revoked(revoked: Any) -> None:
        try:
            gate = app.seatflow_gate
            # Flow control is left to Faust: stopping it here stalled its recovery.
            if not app.should_stop and gate.in_flight and not await gate.wait_idle(within):
                on_timeout("rebalance", TimeoutError("batches in hand not finished in time"))
        except Exception as exc:  # Faust's own handler below must run whatever happens here
            log.warning("could not finish batches in hand before revocation: %r", exc)
        await original(revoked)

    app._on_partitions_revoked = on_partitions_revoked
