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
acknowledging anything: restarted, it resumes at the last commit. (Records still buffered
and not yet taken into a batch are not covered; suspending Faust's flow to cover them
stalled its table recovery after the rebalance.)
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("seatflow.rebalance")


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
