"""The Redis sink: seat hashes, seat maps and availability counters.

`apply` reads the checkpoint hash `{prefix}checkpoint:{projection}:{topic}` (field:
partition, value: next offset) under WATCH, drops what was already applied (`pending`),
folds the rest (`merged`), and sends every write plus the new checkpoint fields in ONE
MULTI/EXEC: Redis runs it atomically, and EXEC fails if another writer (a second worker
that owned the partition before a rebalance) moved the checkpoint after our read, in
which case we read again and re-decide. Hence exactly-once per batch without locks.

The commands mirror `MemorySink.write` step by step, so both end with the same hashes:

- a seat hash is replaced whole: DEL, then HSET of `SeatRecord.hash_fields()`;
- seat-map fields are set (HSET) or removed (HDEL; Redis drops a hash that becomes empty,
  as MemorySink does);
- availability: `HINCRBY field 0` makes a field that must exist appear as "0" without
  changing an existing one, then HINCRBY adds the deltas.

A command failing at EXEC time (e.g. HINCRBY on a field that is not an integer, only
possible if something else wrote our keys) is not rolled back by Redis: the error is
raised, but the other commands of the transaction, the checkpoint included, took effect.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import WatchError

from workers.projection.model import Mutations
from workers.settings import Settings
from workers.sinks.base import PROJECTION, ApplyResult, PositionedMutations, merged, pending
from workers.verify.snapshot import Snapshot

DEFAULT_PREFIX = "sf:"
SCAN_COUNT = 1000


def _text(value: str | bytes) -> str:
    """Works with clients made with or without decode_responses."""
    return value.decode() if isinstance(value, bytes) else value


class RedisSink:
    """Applies batches to the Redis read models under one key prefix."""

    name = "redis"

    def __init__(self, client: aioredis.Redis, prefix: str = DEFAULT_PREFIX) -> None:
        self.client = client
        self.prefix = prefix
        self._owns_client = False
        self.watch_retries = 0
        """How often EXEC found the checkpoint moved and the batch was re-decided."""

    @classmethod
    async def connect(cls, settings: Settings) -> RedisSink:
        client = aioredis.from_url(settings.redis_url.get_secret_value(), decode_responses=True)
        await client.ping()  # fail at start, not at the first batch
        sink = cls(client, settings.redis_prefix)
        sink._owns_client = True
        return sink

    async def close(self) -> None:
        """Close the client if `connect` made it; a client passed in belongs to the caller."""
        if self._owns_client:
            await self.client.aclose()

    def checkpoint_key(self, topic: str) -> str:
        return f"{self.prefix}checkpoint:{PROJECTION}:{topic}"

    async def positions(self, topic: str) -> dict[int, int]:
        raw = await self.client.hgetall(self.checkpoint_key(topic))
        return _offsets(raw)

    async def apply(self, topic: str, batch: Sequence[PositionedMutations]) -> ApplyResult:
        if not batch:
            return ApplyResult(applied=0, skipped=0)
        key = self.checkpoint_key(topic)
        async with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    # After WATCH the pipeline runs commands at once (immediate mode).
                    current = _offsets(await pipe.hgetall(key))  # type: ignore[misc]
                    todo, advanced = pending(batch, current)
                    if not todo:
                        await pipe.unwatch()  # type: ignore[no-untyped-call]
                        break
                    pipe.multi()
                    self._queue_writes(pipe, merged(todo))
                    pipe.hset(key, mapping={str(p): str(o) for p, o in sorted(advanced.items())})
                    await pipe.execute()
                    break
                except WatchError:
                    # Someone moved the checkpoint between our read and EXEC; nothing of
                    # ours was written. Decide again from the new checkpoint.
                    self.watch_retries += 1
                    await pipe.reset()
        return ApplyResult(applied=len(todo), skipped=len(batch) - len(todo))

    def _queue_writes(self, pipe: Any, m: Mutations) -> None:
        """Queue the commands for `m`, in MemorySink.write's order."""
        p = self.prefix
        for seat_id, record in sorted(m.seats.items()):
            seat_key = f"{p}seat:{seat_id}"
            pipe.delete(seat_key)
            pipe.hset(seat_key, mapping=record.hash_fields())
        for event, fields in _by_event((e, s, v) for (e, s), v in m.seatmap_set.items()):
            pipe.hset(f"{p}seatmap:{event}", mapping=dict(fields))
        for event, fields in _by_event((e, s, None) for e, s in m.seatmap_del):
            pipe.hdel(f"{p}seatmap:{event}", *(name for name, _ in fields))
        for event, name in sorted(m.availability_fields):
            pipe.hincrby(f"{p}availability:{event}", name, 0)
        for (event, name), delta in sorted(m.availability.items()):
            pipe.hincrby(f"{p}availability:{event}", name, delta)

    async def snapshot(self) -> Snapshot:
        """Every hash under the prefix, keys without the prefix, checkpoints left out."""
        p = self.prefix
        skip = f"{p}checkpoint:"
        keys = sorted(
            {
                _text(k)
                async for k in self.client.scan_iter(match=_glob_escape(p) + "*", count=SCAN_COUNT)
            }
        )
        keys = [k for k in keys if not k.startswith(skip)]
        hashes: dict[str, dict[str, str]] = {}
        for start in range(0, len(keys), SCAN_COUNT):
            chunk = keys[start : start + SCAN_COUNT]
            async with self.client.pipeline(transaction=False) as pipe:
                for k in chunk:
                    pipe.hgetall(k)
                values = await pipe.execute()
            for k, fields in zip(chunk, values, strict=True):
                if fields:  # a key deleted between SCAN and HGETALL
                    hashes[k[len(p) :]] = {_text(f): _text(v) for f, v in fields.items()}
        return Snapshot(hashes=hashes)


def _offsets(raw: dict[Any, Any]) -> dict[int, int]:
    return {int(_text(p)): int(_text(o)) for p, o in raw.items()}


def _by_event(
    items: Iterable[tuple[str, str, str | None]],
) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """Group seat-map changes by concert event: one HSET / HDEL per seat map."""
    grouped: dict[str, list[tuple[str, str | None]]] = {}
    for event, seat_id, value in items:
        grouped.setdefault(event, []).append((seat_id, value))
    return [(event, sorted(grouped[event], key=lambda f: f[0])) for event in sorted(grouped)]


def _glob_escape(text: str) -> str:
    """Escape SCAN MATCH's glob characters, so a prefix is matched literally."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
