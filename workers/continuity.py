"""No offset of a partition is passed over: holes Faust leaves behind are read again.

Faust can drop a record without handing it to an agent: its stream skips records of an
older consumer generation (or arriving while its flow is suspended) and counts on a later
seek to read them again, which does not always come (seen in the scale-out test: a
reservation-created partition whose committed offset froze below records acknowledged
after it). Worse, the next record it reads then looks like one after offsets the log
skips, a "gap" its commit counts as acknowledged, so acknowledging that next record commits
past the dropped one (reservations missing after a kill test and a redrive test in CI;
tests/integration/dropping_worker.py reproduces it). The guards:

- every batch is taken only as far as its records follow on from what was taken before
  (`contiguous_run`); from a hole on its records are left unacknowledged and the consumer
  is sought back to the hole:
  - seat-facts (`SeatFactsContinuity`): from the next offset the sinks need per partition
    (read from the sinks after each rebalance, then tracked), since the sinks skip every
    position at or below their checkpoint and applying past a hole would lose it for good;
  - sources (`SourceContinuity`): from the group's committed offset when the rebalance
    ended, then one past each record ingested;
- every partition (`find_stuck`, `ack_hole`): one whose committed offset stays below
  acknowledged records, or below records fetched that nobody acknowledged while no batch
  is in hand, for several checks in a row, is sought back to its committed offset.

Reading a record twice is harmless: facts are sets, and on seat-facts the sinks skip what
they have (and the checks above keep them from passing a hole).
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

    def cut(self, partition: int, offsets: Sequence[int]) -> tuple[int, int | None]:
        """How many of a partition's records (`offsets`, as read) may be applied: those
        that follow what the sinks applied without a hole; and the offset to read again
        from if the others do not (the hole's first offset)."""
        keep, hole = contiguous_run(offsets, self.next_offset.get(partition))
        if hole is None:
            return keep, None
        self.returns[partition] = count = self.returns.get(partition, 0) + 1
        if count > self.max_returns:
            raise UnreadableHoleError(
                f"seat-facts partition {partition}: offsets {hole}..{offsets[keep] - 1} "
                f"never arrive after {count - 1} seeks back; were they deleted by retention?"
            )
        return keep, hole

    def applied(self, partition: int, last_offset: int) -> None:
        self.next_offset[partition] = max(self.next_offset.get(partition, 0), last_offset + 1)
        self.all_need_from[partition] = max(self.all_need_from.get(partition, 0), last_offset + 1)
        self.returns.pop(partition, None)


@dataclass(slots=True)
class SourceContinuity:
    """The next offset expected per source partition: the group's committed offset when
    an epoch (the time between two rebalances) begins, then one past each record taken.

    The ingest stage is the only reader of a source record: a record passed over there and
    committed past is lost for every read model. Faust's commit passes offsets it counts
    as "gaps" (offsets the log skips, found by comparing each fetched offset with the last
    one it read), and a record it dropped without reading looks the same, so a batch is
    taken only as far as its records follow on from what was taken before, and the
    consumer goes back to the first one missing.

    A hole that comes back at the same place `confirm_after` times in a row is one the
    log really has (transaction markers, compaction, retention): accepted, and logged.
    """

    confirm_after: int = 2
    epoch: int = -1
    next_offset: dict[Any, int] = field(default_factory=dict)
    seen: dict[Any, tuple[tuple[int, int], int]] = field(default_factory=dict)
    """tp -> (the hole last found, how many times in a row)."""

    def cut(
        self, epoch: int, tp: Any, offsets: Sequence[int], committed: int | None
    ) -> tuple[int, int | None, tuple[int, int] | None]:
        """(how many of `offsets` may be taken, the offset to read again from or None,
        a hole of the log accepted on the way or None). `committed`: the group's committed
        offset of `tp`, the start of the run when the epoch is new (None: not known)."""
        if epoch != self.epoch:
            self.epoch, self.next_offset, self.seen = epoch, {}, {}
        expected = self.next_offset.get(tp, committed)
        accepted = None
        start = 0
        while True:
            keep, hole = contiguous_run(offsets[start:], expected)
            keep += start
            if hole is None:
                self.seen.pop(tp, None)
                return keep, None, accepted
            found = (hole, offsets[keep])
            before, count = self.seen.get(tp, (found, 0))
            count = count + 1 if before == found else 1
            if count < self.confirm_after:
                self.seen[tp] = (found, count)
                return keep, hole, accepted
            self.seen.pop(tp, None)
            accepted, expected, start = found, offsets[keep], keep

    def taken(self, tp: Any, last_offset: int) -> None:
        self.next_offset[tp] = max(self.next_offset.get(tp, 0), last_offset + 1)


def contiguous_run(offsets: Sequence[int], expected: int | None) -> tuple[int, int | None]:
    """How many of a partition's `offsets` (in the order read) follow on from `expected`
    without a hole, and the first offset missing if not all of them do.

    An offset below the next one expected is a record read again after a seek back:
    harmless (facts are sets, sinks skip what they have), so it is kept. `expected`
    None: not known, the first offset starts the run."""
    if not offsets:
        return 0, None
    following = offsets[0] if expected is None else expected
    for index, offset in enumerate(offsets):
        if offset > following:
            return index, following
        if offset == following:
            following += 1
    return len(offsets), None


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
