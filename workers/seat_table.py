"""The seat table: a Faust table of seat states, written per partition, changelog awaited.

Three Faust behaviours shape this module:

- a table's store (RocksDB keeps one database per partition) picks the partition of *the
  current event*; in a batch that spans partitions that would file a seat under the wrong
  one. So each partition's slice of a batch runs with the current event pinned to an
  event of that partition (`pinned`), and the seat-facts routing uses the same murmur2
  partitioner as Kafka, so a seat's state lives in the partition its facts arrive on.
- keys are the seat id's utf-8 bytes, the same bytes the changelog carries, so a state
  written and a state recovered from the changelog are found under one key;
- `table[key] = value` queues the changelog record in a 100-message buffer and forgets
  it. The seat stage must know the state is durable *before* the sinks apply mutations
  derived from it (the table may run ahead of the sinks, never behind), so `save` sends
  the changelog records itself, awaits their delivery, and then records the persisted
  changelog offset exactly as Faust's own delivery callback does.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import rocksdict
from faust.streams import _current_event
from faust.types import TP

Send = Callable[..., Awaitable[Awaitable[Any]]]


@contextmanager
def pinned(event: Any) -> Iterator[None]:
    """Make `event` Faust's current event (its partition is the one tables use)."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


class SeatTable:
    def __init__(self, table: Any, changelog_topic: str, send: Send) -> None:
        self.table = table
        self.changelog_topic = changelog_topic
        self.send = send

    def get(self, seat_id: str) -> bytes | None:
        """Read under `pinned` (RocksDB looks in the current event's partition)."""
        return self.table.data.get(seat_id.encode())

    def store(self, partition: int, states: Mapping[str, bytes]) -> None:
        """Write to the local store: the partition's RocksDB in one write batch (Faust's
        own changelog recovery writes the same way), or the memory store under `pinned`.

        One `put` per seat through Faust's store costs a RocksDB write (WAL append and
        memtable insert) plus Faust's key-index bookkeeping each; a write batch pays the
        write once per partition and batch. The key index is only a lookup hint for reads
        without a current event, which the seat stage never does (reads are `pinned`).
        """
        data = self.table.data
        open_db = getattr(data, "_db_for_partition", None)
        if open_db is not None and getattr(data, "use_rocksdict", False):
            batch = rocksdict.WriteBatch(raw_mode=True)
            for seat_id, value in states.items():
                batch.put(seat_id.encode(), value)
            open_db(partition).write(batch)
            return
        for seat_id, value in states.items():
            data[seat_id.encode()] = value

    async def save(self, partition: int, states: Mapping[str, bytes]) -> None:
        """Send the changelog records and wait until Kafka has them all."""
        if not states:
            return
        futures = [
            await self.send(self.changelog_topic, seat_id.encode(), value, partition, None, None)
            for seat_id, value in states.items()
        ]
        delivered = await asyncio.gather(*futures)
        last = max(meta.offset for meta in delivered)
        self.table.data.set_persisted_offset(TP(self.changelog_topic, partition), last)
