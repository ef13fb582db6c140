"""The Redis sink: seat hashes, seat maps and availability counters.

`apply` reads the checkpoint hash `{prefix}checkpoint:{projection}:{topic}` (field:
partition, value: next offset) under WATCH, drops what was already applied (`pending`),
folds the rest (`merged`), and sends every write plus the new checkpoint fields in ONE
MULTI/EXEC: Redis runs it atomically, and EXEC fails if another writer (a second worker
that owned the partition before a rebalance) moved the checkpoint after our read, in
which case we read again and re-decide. Hence exactly-once per batch without locks.

The writes mirror `MemorySink.write` step by step (see `WRITE_SCRIPT`), so both end with
the same hashes. They run as one Lua script queued in the MULTI, for client-side speed.

A command failing at EXEC time (e.g. HINCRBY on a field that is not an integer, only
possible if something else wrote our keys) is not rolled back by Redis: the error is
raised, but the writes before it in the transaction took effect.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Self

import orjson
import redis.asyncio as aioredis
from redis.exceptions import WatchError

from workers.generation import check_redis_generation, redis_generation_key
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

    def __init__(
        self, client: aioredis.Redis, prefix: str = DEFAULT_PREFIX, *, generation: int | None = None
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.generation = generation
        """When set, each batch WATCHes and checks the generation key too
        (workers/generation.py); None: no fence (tests, the replay's shadow copy)."""
        self._owns_client = False
        self.watch_retries = 0
        """How often EXEC found the checkpoint moved and the batch was re-decided."""

    @classmethod
    async def connect(cls, settings: Settings, *, generation: int | None = None) -> Self:
        client = aioredis.from_url(settings.redis_url.get_secret_value(), decode_responses=True)
        await client.ping()  # fail at start, not at the first batch
        sink = cls(client, settings.redis_prefix, generation=generation)
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
                    if self.generation is None:
                        await pipe.watch(key)
                    else:
                        fence = redis_generation_key(self.prefix)
                        await pipe.watch(key, fence)
                        check_redis_generation(await pipe.get(fence), self.generation, self.prefix)
                    # After WATCH the pipeline runs commands at once (immediate mode).
                    current = _offsets(await pipe.hgetall(key))
                    todo, advanced = pending(batch, current)
                    if not todo:
                        await pipe.unwatch()
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
        """Queue the writes of `m`: one EVAL of `WRITE_SCRIPT` with them as JSON."""
        if m.has_redis():
            pipe.eval(WRITE_SCRIPT, 0, write_payload(self.prefix, m))

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


WRITE_SCRIPT = """
local function in_pieces(command, key, f)
  for j = 1, #f, 1000 do redis.call(command, key, unpack(f, j, math.min(j + 999, #f))) end
end
local w = cjson.decode(ARGV[1])
for _, seat in ipairs(w.seats) do
  redis.call('DEL', seat[1])
  in_pieces('HSET', seat[1], seat[2])
end
for _, map in ipairs(w.hset) do in_pieces('HSET', map[1], map[2]) end
for _, map in ipairs(w.hdel) do in_pieces('HDEL', map[1], map[2]) end
for _, inc in ipairs(w.incr) do redis.call('HINCRBY', inc[1], inc[2], inc[3]) end
return 1
"""
"""Applies `write_payload`'s writes inside the MULTI, with MemorySink.write's steps:

- seat hashes replaced whole (DEL, then HSET of `SeatRecord.hash_items()`);
- fields are set and removed with one HSET per key and up to 500 fields (1000 values),
  one HDEL per key and up to 1000 fields, not one call per field: the result is the same
  (a field named twice ends with its last value), and Redis spends most of a script's
  time per call (it used 14 s of CPU for the seat hashes and maps of a 1,000,000-event
  replay with one HSET per field). 1000 values per call stay clear of Lua's `unpack`
  limit (8000 on Redis's Lua 5.1);
- seat-map fields set (HSET) or removed (HDEL; Redis drops a hash left empty, as
  MemorySink does);
- availability: `HINCRBY field 0` for the fields that must exist (creates "0", leaves an
  existing value alone), then HINCRBY of the deltas.

Why a script rather than the same commands queued one by one: the commands are the same,
but redis-py spends ~50 us of Python per queued command packing it and parsing its two
replies (QUEUED, then its slot in EXEC's array), which made a 1000-entry flush cost
~100 ms of client CPU; one EVAL with a JSON argument costs ~1 ms to build. Deltas travel
as strings so that Lua's doubles never touch them.
"""


def write_payload(prefix: str, m: Mutations) -> bytes:
    """The JSON argument of WRITE_SCRIPT for `m` (pure; sorted, so deterministic)."""
    p = prefix
    records = m.seats
    seats = [[f"{p}seat:{seat_id}", records[seat_id].hash_items()] for seat_id in sorted(records)]
    hset = [
        [f"{p}seatmap:{event}", [x for item in fields for x in item]]
        for event, fields in _by_event((e, s, v) for (e, s), v in m.seatmap_set.items())
    ]
    hdel = [
        [f"{p}seatmap:{event}", [name for name, _ in fields]]
        for event, fields in _by_event((e, s, None) for e, s in m.seatmap_del)
    ]
    incr = [[f"{p}availability:{e}", name, "0"] for e, name in sorted(m.availability_fields)]
    incr += [
        [f"{p}availability:{e}", name, str(d)] for (e, name), d in sorted(m.availability.items())
    ]
    return orjson.dumps({"seats": seats, "hset": hset, "hdel": hdel, "incr": incr})


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
