"""`seatflow worker` whose consumer drops some records the first time it fetches them.

Faust can drop a fetched record without handing it to an agent (a generation change or a
suspended flow in the middle of a fetch, a partition paused for recovery); the next record
it reads then looks like one after offsets the log skips, a "gap" that its commit counts
as acknowledged. This consumer does that on purpose, to one record in `DROP_EVERY` of
every stream partition, once per record, so that the worker's continuity checks
(workers/continuity.py) must find each hole and read it again for nothing to be lost.

Run as `python -m tests.integration.dropping_worker worker ...` (from the project root).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from typing import Any

import workers.app
from workers.cli import main
from workers.consumer import SeatflowConsumer, install

DROP_EVERY = 7
DROPPED_MARK = "dropping_worker: dropped"


class DroppingConsumer(SeatflowConsumer):
    dropped: set[tuple[Any, int]] = set()

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[Any, Any]]:  # noqa: ASYNC109 (Faust's signature)
        async for tp, message in super().getmany(timeout):
            key = (tp, message.offset)
            if (
                not self._is_changelog_tp(tp)
                and message.offset % DROP_EVERY == DROP_EVERY // 2
                and key not in self.dropped
            ):
                self.dropped.add(key)
                print(f"{DROPPED_MARK} {tp.topic}/{tp.partition}@{message.offset}", flush=True)
                continue
            yield tp, message


def install_dropping(app: Any) -> None:
    install(app, DroppingConsumer)


if __name__ == "__main__":
    workers.app.install_consumer = install_dropping  # type: ignore[attr-defined]
    sys.exit(main(sys.argv[1:]))
