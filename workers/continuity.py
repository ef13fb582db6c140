"""No offset of a partition is passed over: holes Faust leaves behind are read again.

Faust can drop a record without handing it to an agent: its stream skips records of an
older consumer generation (or arriving while its flow is suspended) and counts on a later
seek to read them again, which does not always come (seen in the scale-out test: a
reservation-created partition whose committed offset froze below records acknowledged
after it). Two guards, one per kind of partition:

- seat-facts (`SeatFactsContinuity`): the sinks skip every position at or below their
  checkpoint, so applying a record after a hole would lose the hole's records for good.
  Each batch is checked against the next offset the sinks need per partition (read from
  the sinks after each rebalance, then tracked); a partition whose records start past it
  is left out of the batch, unacknowledged, and the consumer is sought back to the hole.
- every partition (`find_stuck`, `ack_hole`): one whose committed offset stays below
  acknowledged records, or below records fetched that nobody acknowledged while no batch
  is in hand, for several checks in a row, is sought back to its committed offset.
  Reading a record twice is harmless: facts are sets, and on seat-facts the sinks skip
  what they have (and the check above keeps them from passing a hole).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


class UnreadableHoleError(RuntimeError):
    """The same hole came back too often: its records are gone (retention deleted them
    while the worker was down?). Stopping beats looping, and beats skipping."""


@dataclass(slots=True)
class SeatFactsContinuity:
    """The next seat-facts offset the sinks need, per partition; forgotten at each rebalance
    (`epoch`), then read again from the sinks (the smallest of their positions)."""

    epoch: int = -1
    next_offset: dict[int, int] = field(default_factory=dict)
    all_need_from: dict[int, int] = field(default_factory=dict)
    """Per partition, the highest of the sinks' next offsets: from there on every sink
    needs every record, so a slice starting there may be projected as one range."""
    max_returns: int = 200
    """How often one hole may be sought back to before it is declared unreadable."""
    returns: dict[int, int] = field(default_factory=dict)

    def needs_positions(self, epoch: int, partitions: Iterable[int]) -> bool:
        if epoch != self.epoch:
            self.epoch, self.next_offset, self.all_need_from = epoch, {}, {}
        return any(p not in self.next_offset for p in partitions)

    def learn(self, positions: Sequence[Mapping[int, int]], partitions: Iterable[int]) -> None:
        """`positions`: each sink's next offsets. A partition some sink has no position for
        stays unknown (its log may not start at 0): it is not checked until applied once."""
        for p in partitions:
            known = [pos[p] for pos in positions if p in pos]
            if len(known) == len(positions) and known:
                self.next_offset[p] = min(known)
            if positions:  # a sink without a position needs everything: from 0
                self.all_need_from[p] = max(pos.get(p, 0) for pos in positions)

    def needed_by_all(self, partition: int, first_offset: int) -> bool:
        """Whether every sink needs every record of a slice that starts at `first_offset`
        (no sink's position lies inside it). Unknown: no."""
        highest = self.all_need_from.get(partition)
        return highest is not None and first_offset >= highest

    def hole(self, partition: int, first_offset: int) -> int | None:
        """The offset to read again from, if the partition's records start past it."""
        expected = self.next_offset.get(partition)
        if expected is None or first_offset <= expected:
            return None
        self.returns[partition] = count = self.returns.get(partition, 0) + 1
        if count > self.max_returns:
            raise UnreadableHoleError(
                f"seat-facts partition {partition}: offsets {expected}..{first_offset - 1} "
                f"never arrive after {count - 1} seeks back; were they deleted by retention?"
            )
        return expected

    def applied(self, partition: int, last_offset: int) -> None:
        self.next_offset[partition] = max(self.next_offset.get(partition, 0), last_offset + 1)
        self.all_need_from[partition] = max(self.all_need_from.get(partition, 0), last_offset + 1)
        self.returns.pop(partition, None)


@dataclass(slots=True)
class StuckWatch:
    """Per partition, the hole (`ack_hole`) seen at each check and for how many in a row."""

    checks: int = 3
    seen: dict[Any, tuple[tuple[int, int], int]] = field(default_factory=dict)

    def find_stuck(self, holes: Mapping[Any, tuple[int, int] | None]) -> list[tuple[Any, int]]:
        """`holes`: tp -> `ack_hole` of the partition. Returns (tp, offset to read again
        from) for every hole unchanged over `checks` checks in a row."""
        stuck: list[tuple[Any, int]] = []
        for tp, hole in holes.items():
            if hole is None:
                self.seen.pop(tp, None)
                continue
            before, count = self.seen.get(tp, (hole, 0))
            count = count + 1 if before == hole else 1
            if count >= self.checks:
                stuck.append((tp, hole[0]))
                count = 0
            self.seen[tp] = (hole, count)
        for tp in [tp for tp in self.seen if tp not in holes]:
            del self.seen[tp]
        return stuck

    def forget(self) -> None:
        self.seen.clear()


def ack_hole(
    committed: int | None,
    acked: Sequence[int] | None,
    gaps: Iterable[Any] = (),
    taken: int | None = None,
    idle: bool = False,
) -> tuple[int, int] | None:
    """(committed, first offset known to be past the hole) if records were passed over
    after the committed offset; None if there is no such hole (or nothing to say).

    Two signs: records past the committed offset were acknowledged while an earlier one
    was not; or (only when no batch is in hand, `idle`) records before `taken`, the next
    offset the consumer will fetch, are past the committed offset and none was
    acknowledged: they went nowhere (Faust dropped them before or after its stream).
    `gaps`: intervals (`.begin`, `.end`, end excluded) of offsets the log skips, as the
    consumer records them (workers/consumer.py): a hole they cover is no hole."""
    if committed is None:
        return None
    if acked:
        end = min(acked)
    elif idle and taken is not None and taken > committed:
        end = taken
    else:
        return None
    if end <= committed:
        return None
    missing = set(range(committed, end))
    for interval in gaps:
        missing.difference_update(range(interval.begin, interval.end))
        if not missing:
            return None
    return (committed, end)
