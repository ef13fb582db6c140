"""One harness per sink, so a single contract suite runs against all of them.

MemorySink is the executable definition; the real sinks must end with the same content,
each for the part of the read models it owns (`own`): PostgreSQL the tables, Redis the
hashes. The memory harness is in the suite too, which checks the suite itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from workers.replay.shadow import ShadowRedisSink
from workers.settings import Settings
from workers.sinks.base import Sink
from workers.sinks.memory import MemorySink
from workers.sinks.postgres_sink import PostgresSink
from workers.sinks.redis_sink import RedisSink
from workers.verify.snapshot import Snapshot


def tables_only(snap: Snapshot) -> Snapshot:
    return Snapshot(tables=snap.tables)


def hashes_only(snap: Snapshot) -> Snapshot:
    return Snapshot(hashes=snap.hashes)


@dataclass
class Harness:
    kind: str
    sink: Sink
    own: Callable[[Snapshot], Snapshot]
    """The part of a snapshot this sink is responsible for."""
    read: Callable[[], Awaitable[Snapshot]]
    """This sink's current content, restricted with `own`."""
    another: Callable[[], Awaitable[Sink]] | None = None
    """A second, independent sink on the same store (a second worker), if any."""
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @property
    def has_tables(self) -> bool:
        return self.kind in ("memory", "postgres", "postgres-staged")

    async def expected(self, reference: MemorySink) -> Snapshot:
        return self.own(reference.snapshot())


@pytest.fixture(params=["memory", "postgres", "postgres-staged", "redis", "redis-shadow"])
async def harness(
    request: pytest.FixtureRequest, migrated_settings: Settings
) -> AsyncIterator[Harness]:
    async with _harness(request.param, migrated_settings) as h:
        yield h


@pytest.fixture(params=["memory", "postgres", "postgres-staged", "redis"])
async def racing_harness(
    request: pytest.FixtureRequest, migrated_settings: Settings
) -> AsyncIterator[Harness]:
    """The sinks that more than one worker may write at once: not the replay's shadow
    sinks, which one process writes under the replay's run lock."""
    async with _harness(request.param, migrated_settings) as h:
        yield h


@asynccontextmanager
async def _harness(kind: str, settings: Settings) -> AsyncIterator[Harness]:
    if kind == "memory":
        memory = MemorySink()

        async def read_memory() -> Snapshot:
            return memory.snapshot()

        h_memory = Harness(kind, memory, lambda s: s, read_memory)

        async def same_memory() -> Sink:
            return memory  # a second writer on the same store, as two tasks of one process

        h_memory.another = same_memory
        yield h_memory
        return

    if kind.startswith("postgres"):
        staged = kind == "postgres-staged"  # the replay's shadow sink: rows by COPY
        pg = await PostgresSink.connect(settings, staged=staged)
        h = Harness(kind, pg, tables_only, lambda: _own(pg.snapshot(), tables_only))

        async def another_pg() -> Sink:
            other = await PostgresSink.connect(settings, staged=staged)
            h.closers.append(other.close)
            return other

        h.another = another_pg
        h.closers.append(pg.close)
    elif kind == "redis-shadow":  # the replay's: values first, in pieces, then counters
        shadow = await ShadowRedisSink.connect(settings)
        shadow.piece_size = 7  # many pieces, several in flight at once
        h = Harness(kind, shadow, hashes_only, lambda: _own(shadow.snapshot(), hashes_only))
        h.closers.append(shadow.close)
    else:
        rs = await RedisSink.connect(settings)
        h = Harness(kind, rs, hashes_only, lambda: _own(rs.snapshot(), hashes_only))

        async def another_redis() -> Sink:
            other = await RedisSink.connect(settings)
            h.closers.append(other.close)
            return other

        h.another = another_redis
        h.closers.append(rs.close)
    try:
        yield h
    finally:
        for close in reversed(h.closers):
            await close()


async def _own(snap: Awaitable[Snapshot], own: Callable[[Snapshot], Snapshot]) -> Snapshot:
    return own(await snap)


@pytest.fixture
async def pg_sink(migrated_settings: Settings) -> AsyncIterator[PostgresSink]:
    sink = await PostgresSink.connect(migrated_settings)
    yield sink
    await sink.close()


@pytest.fixture
async def redis_sink(migrated_settings: Settings) -> AsyncIterator[RedisSink]:
    sink = await RedisSink.connect(migrated_settings)
    yield sink
    await sink.close()
