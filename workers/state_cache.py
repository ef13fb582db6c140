"""Decoded seat states kept in memory between batches of the seat stage.

Decoding a seat's saved state (its facts, with times and money) costs more than
projecting the fact that touched it, and most seats come back batch after batch. The
cache is only a copy of what the Faust table holds, and it is only valid while this
process owns the seat's partition without a break: every rebalance starts a new *epoch*
and empties the cache, and a batch that began in an older epoch does not write its states
back (its partitions may already belong to another worker, whose changes we would not
see if they came back to us).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

from workers.projection.seat import SeatState


class SeatStateCache:
    def __init__(self, max_seats: int = 200_000) -> None:
        self.max_seats = max_seats
        self.epoch = 0
        self._states: OrderedDict[str, SeatState] = OrderedDict()
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._states)

    def invalidate(self) -> None:
        """A rebalance: nothing cached may be trusted any more."""
        self.epoch += 1
        self._states.clear()

    def get(self, seat_id: str) -> SeatState | None:
        state = self._states.get(seat_id)
        if state is None:
            self.misses += 1
            return None
        self.hits += 1
        self._states.move_to_end(seat_id)
        return state

    def keep(self, states: Mapping[str, SeatState], epoch: int) -> None:
        """Store states a batch of `epoch` made durable; ignored if a rebalance came since."""
        if epoch != self.epoch:
            return
        self._states.update(states)
        for seat_id in states:
            self._states.move_to_end(seat_id)
        while len(self._states) > self.max_seats:
            self._states.popitem(last=False)
