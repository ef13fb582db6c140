"""Finish the records in hand before a rebalance takes partitions away.

Faust's revocation handler revokes the table partitions first and only then (with
`stream_wait_empty`) waits for the records agents already hold. A seat batch still in
hand at that point would write seat states into a revoked partition: its RocksDB store is
gone (re-opening it fails on its lock), and its changelog record could land *after* the
new owner's, leaving the compacted changelog with a stale state that later batches would
diff against. `stream_wait_empty` is off because shutdown drains its own way
(workers/shutdown.py), so this hook puts the wait where it belongs: before Faust's
handler runs, flow is suspended (no new records reach the agents) and every record
already delivered must be acknowledged, i.e. applied to the table, its changelog and both
sinks. A batch that cannot finish in time (a dependency is down during a rebalance) stops
the process without acknowledging anything: restarted, it resumes at the last commit.
"""

from __future__ import annotations

import asyncio
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
            if not app.should_stop and app.consumer.assignment():
                app.consumer.stop_flow()
                app.flow_control.suspend()
                await asyncio.wait_for(app.consumer.wait_empty(), within)
        except TimeoutError as exc:
            on_timeout("rebalance: records in hand not finished in time", exc)
        except Exception as exc:  # Faust's own handler below must run whatever happens here
            log.warning("could not finish records in hand before revocation: %r", exc)
        await original(revoked)

    app._on_partitions_revoked = on_partitions_revoked
