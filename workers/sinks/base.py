"""What every sink is: `apply(batch)` atomically, skipping what it has already applied.

A batch is a list of `PositionedMutations`: the mutations produced by the message at
(`partition`, `offset`) of the seat-facts topic. A sink keeps, in the same atomic step as
the writes, the next offset it expects per (projection, topic, partition); entries below
it were applied before (a re-delivered batch after a crash or rebalance) and are skipped.
Entries whose mutations are empty still advance the position: positions say how far the
projection has read, which later serves consistency tokens.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from workers.projection.model import Mutations

PROJECTION = "seats"
"""The name under which the seat projection records its positions."""


@dataclass(frozen=True, slots=True)
class PositionedMutations:
    partition: int
    offset: int
    mutations: Mutations


@dataclass(frozen=True, slots=True)
class ApplyResult:
    applied: int
    """Entries written."""
    skipped: int
    """Entries at or below the sink's checkpoint, not written again."""


def pending(
    batch: Sequence[PositionedMutations], next_offsets: Mapping[int, int]
) -> tuple[list[PositionedMutations], dict[int, int]]:
    """Split off what a sink has not applied yet; return it and the new next offsets.

    An entry is new if its offset is at or past the sink's next offset *and* not one the
    batch already holds: a batch can hold the same records twice (read again after a seek
    back, e.g. Faust's recovery seeking to the committed offset while records sat in an
    agent's buffer), and the second copy's mutations are the first's again, which counters
    must not take twice."""
    todo: list[PositionedMutations] = []
    advanced: dict[int, int] = {}
    taken: set[tuple[int, int]] = set()
    for entry in batch:
        partition, offset = entry.partition, entry.offset
        if offset < next_offsets.get(partition, 0) or (partition, offset) in taken:
            continue
        taken.add((partition, offset))
        todo.append(entry)
        advanced[partition] = max(advanced.get(partition, 0), offset + 1)
    return todo, advanced


def merged(entries: Sequence[PositionedMutations]) -> Mutations:
    """Fold entries, in order, into one set of mutations (one write per key)."""
    total = Mutations()
    for entry in entries:
        total.merge(entry.mutations)
    return total


class Sink(Protocol):
    name: str

    async def apply(self, topic: str, batch: Sequence[PositionedMutations]) -> ApplyResult:
        """Apply what is new in `batch` and advance the positions, all or nothing."""
        ...

    async def positions(self, topic: str) -> dict[int, int]:
        """The next offset to apply, per partition of `topic` (absent: 0)."""
        ...
