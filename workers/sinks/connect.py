"""The worker's sinks, connected lazily and retried: a sink down at start is waited for."""

from __future__ import annotations

import logging

from workers.retry import Health, retry_until_done
from workers.settings import Settings
from workers.sinks.base import Sink
from workers.sinks.postgres_sink import PostgresSink
from workers.sinks.redis_sink import RedisSink

log = logging.getLogger("seatflow.sinks")


class SinkSet:
    def __init__(self, settings: Settings, *, generation: int | None = None) -> None:
        self.settings = settings
        self.generation = generation
        """The worker's projection generation: both sinks fence on it (None: no fence)."""
        self.redis: RedisSink | None = None
        self.postgres: PostgresSink | None = None

    @property
    def all(self) -> list[Sink]:
        return [s for s in (self.redis, self.postgres) if s is not None]

    async def connected(self, health: Health) -> None:
        if self.redis is None:
            self.redis = await retry_until_done(
                lambda: RedisSink.connect(self.settings, generation=self.generation),
                what="redis connect", log=log,
                health=health,
            )  # fmt: skip
        if self.postgres is None:
            self.postgres = await retry_until_done(
                lambda: PostgresSink.connect(self.settings, generation=self.generation),
                what="postgres connect", log=log,
                health=health,
            )  # fmt: skip

    async def close(self) -> None:
        for sink in self.all:
            await sink.close()
        self.redis = self.postgres = None
