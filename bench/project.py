"""The projecting step of a replay batch, alone: seats into one set of mutations, against
each seat into its own mutations then merged (the baseline), in the same process.

    .venv/bin/python bench/project.py [--events 250000] [--batches 2] [--repeat 3]

Builds `--events` upstream-shaped events (`workers.loadgen.scenario`), decodes them and
cuts them into facts once (not timed), splits them into `--batches` replay batches (the
second and later ones hold seats seen before, as a replay's do), then projects every
batch from empty seat states, timing the CPU of this process:

- `into`: `seat.apply_range(..., into=batch)` for every seat, then `drop_zero_counts`:
  what the replay and the live seat stage do;
- `merge`: `seat.apply_range(..., into=Mutations())` for every seat, each merged into the
  batch with `Mutations.merge`: a view per seat, then folded in.

Both must give equal mutations (checked), so the ratio is the price of the fold alone.
Best of `--repeat` runs each, alternating. (Not in it: the view the old code kept for every
seat, which it reused when the seat came back in a later batch, at the price of memory;
`bench/replay.py`, alternating with the old code, measures the whole.)
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.replay import shard
from workers.projection.model import Mutations
from workers.projection.seat import SeatState, apply_range
from workers.replay.fold import BatchFold, decode_chunk


def batches(events: int, count: int) -> list[BatchFold]:
    """`count` folds with their facts grouped by seat, nothing projected yet: the data
    set of `bench/replay.py` (one shard of it), with the offsets Kafka would give."""
    offsets: dict[tuple[str, int], int] = {}
    plain = []
    for topic, key, value, partition in shard(7, events):
        offset = offsets.get((topic, partition), 0)
        offsets[(topic, partition)] = offset + 1
        plain.append((topic, topic, partition, offset, 1_795_000_000_000, key, value, ()))
    size = -(-len(plain) // count)
    folds = []
    for number in range(count):
        fold = BatchFold(number)
        fold.add(decode_chunk(plain[number * size : (number + 1) * size]))
        folds.append(fold)
    return folds


def into_batch(fold: BatchFold, states: dict[str, SeatState]) -> Mutations:
    total = Mutations()
    for seat_id, items in fold.by_seat.items():
        state = states.setdefault(seat_id, SeatState(seat_id))
        apply_range(state, items, fold.low, fold.high, total)
    total.drop_zero_counts()
    return total


def merged_per_seat(fold: BatchFold, states: dict[str, SeatState]) -> Mutations:
    total = Mutations()
    for seat_id, items in fold.by_seat.items():
        state = states.setdefault(seat_id, SeatState(seat_id))
        own = Mutations()
        apply_range(state, items, fold.low, fold.high, own)
        total.merge(own)
    return total


def run(
    folds: list[BatchFold], way: Callable[[BatchFold, dict[str, SeatState]], Mutations]
) -> tuple[float, list[Mutations]]:
    states: dict[str, SeatState] = {}
    gc.collect()
    gc.disable()  # as the replay runs
    try:
        started = time.process_time()
        out = [way(fold, states) for fold in folds]
        return time.process_time() - started, out
    finally:
        gc.enable()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=250_000)
    parser.add_argument("--batches", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    folds = batches(args.events, args.batches)
    facts = sum(fold.facts for fold in folds)
    seats = sum(len(fold.by_seat) for fold in folds)
    print(f"{sum(f.events for f in folds):,} events, {facts:,} facts, {seats:,} seat ranges "
          f"in {args.batches} batches")  # fmt: skip
    best = {"into": float("inf"), "merge": float("inf")}
    results: dict[str, list[Mutations]] = {}
    for _ in range(args.repeat):
        for name, way in (("into", into_batch), ("merge", merged_per_seat)):
            seconds, results[name] = run(folds, way)
            best[name] = min(best[name], seconds)
    assert results["into"] == results["merge"], "the two ways disagree"
    for name, seconds in best.items():
        print(f"  {name:6s} {seconds:6.2f} s CPU  {facts / seconds:10,.0f} facts/s")
    print(f"RESULT into/merge time ratio {best['into'] / best['merge']:.2f} "
          f"({best['merge'] / best['into']:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
