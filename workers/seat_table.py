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
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import rocksdict
from aiokafka import AIOKafkaProducer
from faust.streams import _current_event
from faust.types import TP

from workers.kafka_clients import send_as_batches


@contextmanager
def pinned(event: Any) -> Iterator[None]:
    """Make `event` Faust's current event (its partition is the one tables use)."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


class SeatTable:
    def __init__(
        self, table: Any, changelog_topic: str, producer: Callable[[], AIOKafkaProducer]
    ) -> None:
        self.table = table
        self.changelog_topic = changelog_topic
        self.producer = producer
        """The aiokafka producer under Faust's (asked for at each save: Faust makes a new
        one when its producer restarts)."""

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
        """Send the changelog records and wait until Kafka has them all.

        The records go out as record batches (`kafka_clients.send_as_batches`, on the
        aiokafka producer under Faust's), not one `send` each: Faust's and aiokafka's
        per-message bookkeeping cost more than the record itself (2.6% of the worker's
        CPU in `bench/throughput.py`). Same records, same partition, same order.
        """
        if not states:
            return
        topic = self.changelog_topic
        records = ((seat_id.encode(), value) for seat_id, value in states.items())
        sent = await send_as_batches(self.producer(), topic, partition, records)
        delivered = await asyncio.gather(*(future for future, _ in sent))
        last = max(meta.offset + n - 1 for meta, (_, n) in zip(delivered, sent, strict=True))
        self.table.data.set_persisted_offset(TP(topic, partition), last)
