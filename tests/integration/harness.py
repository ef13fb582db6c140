"""Driving real worker processes in tests: produce upstream-shaped load, run, kill, drain, read."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from aiokafka import AIOKafkaProducer

from workers.kafka_clients import client_kwargs
from workers.loadgen.scenario import UpstreamRecord
from workers.settings import Settings
from workers.sinks.postgres_sink import PostgresSink
from workers.sinks.redis_sink import RedisSink
from workers.topic_catalog import TopicCatalog, load_catalog
from workers.verify.snapshot import Snapshot
from workers.verify.topics import fold_topics, group_lag

SEATFLOW = str(Path(sys.executable).with_name("seatflow"))


def settings_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        if value is None:  # unset optional settings (no SASL user, no CA file)
            continue
        secret = getattr(value, "get_secret_value", None)
        env[f"SEATFLOW_{name.upper()}"] = str(secret() if secret else value)
    return env


def run_cli(
    settings: Settings, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SEATFLOW, *args], env=settings_env(settings), capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip


async def produce(settings: Settings, records: Sequence[UpstreamRecord]) -> None:
    """Produce as upstream does: key as upstream keys, partition as librdkafka picks it."""
    catalog = load_catalog(settings)
    producer = AIOKafkaProducer(
        **client_kwargs(settings), linger_ms=5, max_batch_size=512 * 1024, acks="all",
    )  # fmt: skip
    await producer.start()
    try:
        futures = []
        for record in records:
            spec = catalog.get(record.topic)
            futures.append(
                await producer.send(
                    spec.name,
                    record.value,
                    key=record.key,
                    partition=record.partition(spec.partitions),
                )
            )
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


class WorkerProcess:
    """`seatflow worker` in a subprocess, its output in a log file."""

    def __init__(
        self,
        settings: Settings,
        log_dir: Path,
        name: str = "worker",
        command: Sequence[str] = (SEATFLOW, "worker"),
    ) -> None:
        self.settings = settings
        self.command = list(command)
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = self.log_path.open("ab")
        log.write(f"\n===== start {self.starts} =====\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            [*self.command, "--loglevel", "info"], env=settings_env(self.settings),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, sig)
        self.proc.wait(timeout=60)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill(signal.SIGTERM)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def pipeline_topics(catalog: TopicCatalog) -> list[str]:
    return [spec.name for spec in catalog.sources()] + [catalog.get("seatflow.seat-facts").name]


async def wait_drained(
    settings: Settings, worker: WorkerProcess | None = None, within: float = 300
) -> None:
    """Until the group has committed every record of the sources and of seat-facts."""
    topics = pipeline_topics(load_catalog(settings))
    deadline = time.monotonic() + within
    lag: dict[tuple[str, int], int] = {}
    while time.monotonic() < deadline:
        if worker is not None and not worker.alive():
            raise AssertionError(f"worker exited:\n{worker.log_tail()}")
        lag = await group_lag(settings, topics)
        if lag and not any(lag.values()):
            return
        await asyncio.sleep(1)
    tail = worker.log_tail() if worker else ""
    raise AssertionError(f"not drained after {within}s, lag {lag}\n{tail}")


async def wait_lag_below(settings: Settings, total: int, within: float = 120) -> int:
    """Until fewer than `total` records of sources and seat-facts remain uncommitted."""
    topics = pipeline_topics(load_catalog(settings))
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        remaining = sum((await group_lag(settings, topics)).values())
        if remaining < total:
            return remaining
        await asyncio.sleep(0.2)
    raise AssertionError(f"lag did not fall below {total} in {within}s")


async def read_models(settings: Settings) -> Snapshot:
    """PostgreSQL tables and Redis hashes of `settings`, as one snapshot."""
    postgres = await PostgresSink.connect(settings)
    redis = await RedisSink.connect(settings)
    try:
        snapshot = await postgres.snapshot()
        snapshot.hashes = (await redis.snapshot()).hashes
        return snapshot
    finally:
        await postgres.close()
        await redis.close()


async def assert_matches_topics(settings: Settings) -> Snapshot:
    """The read models of `settings` equal the fold of its topics; returns the fold."""
    expected = await fold_topics(settings, load_catalog(settings))
    differences = (await read_models(settings)).differences(expected)
    assert not differences, "read models differ from the fold of the topics:\n" + "\n".join(
        differences[:40]
    )
    return expected
