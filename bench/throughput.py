"""End-to-end throughput: raw aiokafka vs. a bare Faust agent vs. the seatflow worker.

    .venv/bin/python bench/throughput.py [--events 200000] [--store rocksdb] [--keep]

One run produces ~N upstream-shaped events (`workers.loadgen.scenario`, keyed and
partitioned as upstream does) into the four source topics of a fresh topic prefix, all of
them BEFORE anything is measured, then reads that same data three times:

1. raw aiokafka consume+decode: one AIOKafkaConsumer in this process (manual assignment,
   seek to beginning, large fetches, `getmany`) reads every record and decodes it with
   `workers.decoding.decode`, the worker's decoder. Timed from the first `getmany` to the
   last decode. The floor of any Python consumer of these topics.
2. bare Faust agent: a minimal `faust.App` in a subprocess (its own app id / group,
   memory store, web off, no leader topic, earliest offsets, raw serializers) with one
   agent per source topic doing `async for _ in stream` (per-event iteration and
   acknowledgement, the standard Faust path) plus one counter increment. Timed inside the
   subprocess from the first event to the N-th event (the agents take the timestamps;
   commit-interval delays do not enter the figure). What Faust itself costs per event.
3. seatflow worker: `seatflow worker` in a subprocess (its own consumer group,
   PostgreSQL schema, Redis prefix; the store of `--store`) projecting into both sinks.
   Timed from the first sign of consumption (the first seat-facts record produced or the
   first offset committed, polled every 0.25 s) to the drain: every offset of the source
   topics AND of the seat-facts topic committed by its group, i.e. everything applied in
   Redis and PostgreSQL. Faust commits every 2.8 s, so the drain is seen up to ~3 s after
   the last batch applied; the time at which both sinks' checkpoints reached the end of
   seat-facts is printed too ("sinks applied"). Start-up (imports, migration, group join,
   table recovery) is reported separately.

The ratios say how much of the framework's throughput the worker keeps (target: worker /
bare Faust >= 0.5) and how much Faust keeps of a raw consumer. The CPU seconds each reader
process used in its window are printed too (CPU/s: a reader near 1.0 is bound by its own
single-threaded Python, not by I/O; well below 1.0 on a busy machine means it waited for a
core), and the ratios are also given per CPU-second: on a small machine shared with Kafka,
PostgreSQL, Redis and other work, those move less from one run to the next than wall time.

The worker runs with its metrics HTTP server off (SEATFLOW_METRICS_PORT=0: no port clash
with another worker on the machine); everything else is its default configuration.

Everything the run creates (topics of its prefix, the PostgreSQL schema and the worker's
row for it in seatflow_control.generations, Redis keys, a temporary directory with the
logs and the RocksDB store) is removed at the end unless
`--keep`. Consumer groups are left for the broker to expire (aiokafka cannot delete them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupCoordinatorNotAvailableError

from workers.db.migrate import quote_ident
from workers.decoding import DecodeError, decode, load_validators
from workers.events import EventType
from workers.loadgen.scenario import ScenarioShape, UpstreamRecord, scenario
from workers.settings import Settings, StoreKind, load_settings
from workers.sinks.postgres_sink import PostgresSink
from workers.sinks.redis_sink import RedisSink
from workers.topic_admin import apply as apply_topics
from workers.topic_catalog import TopicCatalog, load_catalog

SEAT_FACTS = "seatflow.seat-facts"
SEATFLOW = str(Path(sys.executable).with_name("seatflow"))
THIS_SCRIPT = str(Path(__file__).resolve())
EVENTS_PER_RESERVATION = 2.058
"""Records per reservation of the default scenario ratios (creations, expiries, orders,
duplicates, seats-generated); measured on seed 7, used to size the scenario."""
EVENTS_PER_CONCERT_EVENT = 5_000
SEATS_PER_CONCERT_EVENT = 1_500
CONTROL_TABLE = "seatflow_control.generations"
"""Where the worker records the projection generation of each read-model schema."""
PROGRESS_EVERY_S = 3.0
POLL_S = 0.25


# ------------------------------------------------------------------------------ plumbing


@dataclass(frozen=True)
class Run:
    """The names that isolate one run from everything else on the services."""

    run_id: str
    workdir: Path
    base: Settings

    @property
    def prefix(self) -> str:
        return f"{self.run_id}."

    def worker_settings(self, store: StoreKind) -> Settings:
        return self.base.model_copy(
            update={
                "topic_prefix": self.prefix,
                "consumer_group": f"{self.run_id}-worker",
                "pg_schema": f"rm_{self.run_id}",
                "redis_prefix": f"{self.run_id}:sf:",
                "store": store,
                "data_dir": self.workdir / "data",
            }
        )

    @property
    def faust_group(self) -> str:
        return f"{self.run_id}-faust-noop"


@dataclass
class PhaseResult:
    phase: str
    """One of PHASES."""
    name: str
    events: int
    seconds: float
    """The measured window."""
    window: str
    """What the window runs from and to."""
    with_startup: float | None = None
    cpu_seconds: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.events / self.seconds


class Progress:
    """Prints a line at most every PROGRESS_EVERY_S seconds: count so far and rates."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total = label, total
        self.start = self.last_t = time.perf_counter()
        self.last_n = 0

    def update(self, done: int, extra: str = "", force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self.last_t < PROGRESS_EVERY_S:
            return
        recent = (done - self.last_n) / max(now - self.last_t, 1e-9)
        overall = done / max(now - self.start, 1e-9)
        print(
            f"  {self.label}: {done:>9,}/{self.total:,} ({done / self.total:4.0%}) "
            f"{recent:>8,.0f}/s now, {overall:>8,.0f}/s overall {extra}",
            flush=True,
        )
        self.last_t, self.last_n = now, done


ISOLATED = ("topic_prefix", "consumer_group", "pg_schema", "redis_prefix", "store", "data_dir")
"""The settings a run overrides; a subprocess reads every other one as this process does."""


def worker_env(settings: Settings) -> dict[str, str]:
    """This process's environment plus the run's isolating settings.

    The metrics HTTP server is turned off (SEATFLOW_METRICS_PORT=0) so that the benchmark
    worker cannot collide with another worker's port on a shared machine; the metrics are
    still collected.
    """
    env = dict(os.environ)
    for name in ISOLATED:
        env[f"SEATFLOW_{name.upper()}"] = str(getattr(settings, name))
    env["SEATFLOW_METRICS_PORT"] = "0"
    return env


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def spawn(cmd: Sequence[str], env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    """Start `cmd` in its own session (so it can be stopped as a group), output to `log`."""
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            *cmd, env=env, stdout=out, stderr=asyncio.subprocess.STDOUT, start_new_session=True
        )


async def stop(proc: asyncio.subprocess.Process, grace_s: float = 30) -> None:
    """SIGTERM the process group, SIGKILL it if it is still there after `grace_s`."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), grace_s)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()


def log_tail(path: Path, lines: int = 40) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


# ------------------------------------------------------------------------------ setup


def generate(events: int, seed: int) -> list[UpstreamRecord]:
    """An upstream-shaped scenario of about `events` records."""
    shape = ScenarioShape(
        concert_events=max(1, round(events / EVENTS_PER_CONCERT_EVENT)),
        seats_per_event=SEATS_PER_CONCERT_EVENT,
        reservations=max(1, round(events / EVENTS_PER_RESERVATION)),
    )
    t = time.perf_counter()
    records = scenario(seed, shape)
    counts: dict[str, int] = {}
    for record in records:
        counts[record.topic] = counts.get(record.topic, 0) + 1
    mix = ", ".join(f"{topic} {n:,}" for topic, n in sorted(counts.items()))
    print(
        f"generated {len(records):,} records in {time.perf_counter() - t:.1f}s "
        f"({shape.concert_events} concert events x {shape.seats_per_event} seats, "
        f"{shape.reservations:,} reservations): {mix}; "
        f"{sum(len(r.value) for r in records) / len(records):.0f} B average",
        flush=True,
    )
    return records


async def create_topics(settings: Settings, catalog: TopicCatalog) -> None:
    """Every topic of the catalog under the run's prefix (what `seatflow topics apply` does)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        report = await apply_topics(catalog, admin)
    finally:
        await admin.close()
    if not report.as_declared:
        raise SystemExit(f"topics not as declared: {report}")
    print(f"created {len(report.results)} topics under prefix {settings.topic_prefix!r}")


async def produce(
    settings: Settings, catalog: TopicCatalog, records: Sequence[UpstreamRecord]
) -> None:
    """As upstream produces: key as upstream keys, partition as librdkafka picks it."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        linger_ms=20,
        max_batch_size=512 * 1024,
    )
    await producer.start()
    progress = Progress("produced", len(records))
    try:
        pending: list[asyncio.Future[Any]] = []
        for n, record in enumerate(records, 1):
            spec = catalog.get(record.topic)
            pending.append(
                await producer.send(
                    spec.name,
                    record.value,
                    key=record.key,
                    partition=record.partition(spec.partitions),
                )
            )
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
            progress.update(n)
        await asyncio.gather(*pending)
        progress.update(len(records), force=True)
    finally:
        await producer.stop()


async def partitions_of(bootstrap: str, topics: Sequence[str]) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    return sorted(
        TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]
    )


# ------------------------------------------------------------------------------ offsets


@dataclass
class Sample:
    """One look at a consumer group (and the worker's sinks), at `t` (perf_counter)."""

    t: float
    sources_committed: int
    facts_committed: int = 0
    facts_end: int = 0
    redis_applied: int = 0
    postgres_applied: int = 0


class GroupWatch:
    """Committed offsets of one group against the end offsets, with long-lived clients."""

    def __init__(
        self,
        bootstrap: str,
        group: str,
        sources: list[TopicPartition],
        facts: list[TopicPartition] | None = None,
    ) -> None:
        self.group = group
        self.sources, self.facts = sources, facts or []
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self.coordinator: int | None = None

    async def __aenter__(self) -> GroupWatch:
        await self.admin.start()
        await self.consumer.start()
        # On a broker that has never seen a group, __consumer_offsets is created on this
        # first lookup and the coordinator is briefly unavailable: ask again for a while.
        for attempt in range(60):
            try:
                self.coordinator = await self.admin.find_coordinator(self.group)
                break
            except GroupCoordinatorNotAvailableError:
                if attempt == 59:
                    raise
                await asyncio.sleep(0.5)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def committed(self) -> dict[TopicPartition, int]:
        offsets = await self.admin.list_consumer_group_offsets(
            self.group, group_coordinator_id=self.coordinator
        )
        return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}

    async def sample(self) -> Sample:
        """Committed offsets first, end offsets after: a drained sample is really drained."""
        t = time.perf_counter()
        committed = await self.committed()
        sample = Sample(t, sum(committed.get(tp, 0) for tp in self.sources))
        if self.facts:
            sample.facts_committed = sum(committed.get(tp, 0) for tp in self.facts)
            ends = await self.consumer.end_offsets(self.facts)
            sample.facts_end = sum(ends.values())
        return sample


class SinkPositions:
    """How far each sink has applied seat-facts (sum over partitions of its checkpoints)."""

    def __init__(self, settings: Settings, facts_topic: str) -> None:
        self.settings, self.topic = settings, facts_topic
        self.redis: RedisSink | None = None
        self.postgres: PostgresSink | None = None

    async def __aenter__(self) -> SinkPositions:
        self.redis = await RedisSink.connect(self.settings)
        self.postgres = await PostgresSink.connect(self.settings, max_size=1)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for sink in (self.redis, self.postgres):
            if sink is not None:
                await sink.close()

    async def fill(self, sample: Sample) -> None:
        assert self.redis is not None and self.postgres is not None
        sample.redis_applied = sum((await self.redis.positions(self.topic)).values())
        try:
            sample.postgres_applied = sum((await self.postgres.positions(self.topic)).values())
        except asyncpg.PostgresError:  # the worker has not migrated its schema yet
            sample.postgres_applied = 0


# ------------------------------------------------------------------------------ 1. raw


async def measure_raw(settings: Settings, catalog: TopicCatalog, total: int) -> PhaseResult:
    """One consumer, manual assignment, large fetches; decode every record."""
    logical = {spec.name: EventType(spec.logical) for spec in catalog.sources()}
    tps = await partitions_of(settings.kafka_bootstrap, list(logical))
    load_validators()  # compile the schemas before the clock starts, as the worker does
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    progress = Progress("raw aiokafka", total)
    read = errors = 0
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if ends[tp] > 0}
        cpu, start = time.process_time(), time.perf_counter()
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=500, max_records=20_000)
            for tp, messages in batches.items():
                kind = logical[tp.topic]
                for m in messages:
                    try:
                        decode(kind, m.value, m.key, list(m.headers or ()), m.timestamp)
                    except DecodeError:
                        errors += 1
                read += len(messages)
                if messages and messages[-1].offset >= ends[tp] - 1:
                    remaining.discard(tp)
            progress.update(read)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    finally:
        await consumer.stop()
    result = PhaseResult(
        "raw",
        "raw aiokafka consume+decode",
        read,
        seconds,
        "first getmany -> last decode",
        None,
        cpu,
    )
    if errors:
        result.notes.append(f"{errors:,} records failed to decode")
    return result


# ------------------------------------------------------------------------------ 2. Faust


def faust_noop_child(args: argparse.Namespace) -> int:
    """The subprocess of phase 2: a bare Faust app, one do-nothing agent per source topic.

    Writes {"events", "first", "last", "elapsed", "cpu"} (wall-clock first/last event,
    perf_counter and CPU time in between) to `--result` at the `--expect`-th event.
    """
    import faust  # here only: the parent never imports Faust

    app = faust.App(
        args.group,
        broker=f"kafka://{args.bootstrap}",
        store="memory://",
        datadir=args.datadir,
        web_enabled=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="raw",
        autodiscover=False,
    )
    result = Path(args.result)
    state = {"n": 0, "first": 0.0, "first_perf": 0.0, "first_cpu": 0.0}

    def seen() -> None:
        state["n"] += 1
        if state["n"] == 1:
            state["first"], state["first_perf"] = time.time(), time.perf_counter()
            state["first_cpu"] = time.process_time()
        if state["n"] == args.expect:
            doc = {
                "events": state["n"],
                "first": state["first"],
                "last": time.time(),
                "elapsed": time.perf_counter() - state["first_perf"],
                "cpu": time.process_time() - state["first_cpu"],
            }
            result.with_suffix(".tmp").write_text(json.dumps(doc))
            result.with_suffix(".tmp").rename(result)

    async def noop(stream: Any) -> None:
        async for _ in stream:
            seen()

    for n, topic in enumerate(args.topics.split(",")):
        app.agent(app.topic(topic), name=f"noop-{n}", sink=None)(noop)
    asyncio.set_event_loop(asyncio.new_event_loop())
    faust.Worker(app, loglevel="warning", redirect_stdouts=False).execute_from_commandline()
    return 0


async def measure_faust(run: Run, catalog: TopicCatalog, total: int, limit_s: float) -> PhaseResult:
    sources = [spec.name for spec in catalog.sources()]
    tps = await partitions_of(run.base.kafka_bootstrap, sources)
    result_file = run.workdir / "faust-noop.json"
    log = run.workdir / "faust-noop.log"
    cmd = [
        sys.executable,
        THIS_SCRIPT,
        "--faust-noop",
        "--group",
        run.faust_group,
        "--bootstrap",
        run.base.kafka_bootstrap,
        "--topics",
        ",".join(sources),
        "--expect",
        str(total),
        "--result",
        str(result_file),
        "--datadir",
        str(run.workdir / "faust-noop-data"),
    ]
    spawned_wall = time.time()
    proc = await spawn(cmd, dict(os.environ), log)
    progress = Progress("bare Faust (committed)", total)
    try:
        async with GroupWatch(run.base.kafka_bootstrap, run.faust_group, tps) as watch:
            deadline = time.monotonic() + limit_s
            while not result_file.exists():
                if proc.returncode is not None or time.monotonic() > deadline:
                    raise SystemExit(f"bare Faust app failed or timed out:\n{log_tail(log)}")
                progress.update((await watch.sample()).sources_committed)
                await asyncio.sleep(POLL_S)
    finally:
        await stop(proc)
    doc = json.loads(result_file.read_text())
    return PhaseResult(
        "faust",
        "bare Faust agent (noop)",
        doc["events"],
        doc["elapsed"],
        "first event -> N-th event (in the agent)",
        doc["last"] - spawned_wall,
        doc["cpu"],
    )


# ------------------------------------------------------------------------------ 3. worker


@dataclass
class WorkerTimeline:
    spawned: float
    samples: list[Sample] = field(default_factory=list)
    cpu_at_first: float | None = None
    cpu_at_end: float | None = None

    def first_activity(self) -> Sample:
        return next(s for s in self.samples if s.facts_end or s.sources_committed)

    def sinks_applied(self) -> Sample:
        end = self.samples[-1].facts_end
        return next(s for s in self.samples if s.redis_applied == s.postgres_applied == end)


async def measure_worker(
    run: Run,
    settings: Settings,
    catalog: TopicCatalog,
    total: int,
    limit_s: float,
    py_spy: Path | None,
) -> PhaseResult:
    sources = [spec.name for spec in catalog.sources()]
    facts_topic = catalog.get(SEAT_FACTS).name
    bootstrap = settings.kafka_bootstrap
    source_tps = await partitions_of(bootstrap, sources)
    facts_tps = await partitions_of(bootstrap, [facts_topic])
    log = run.workdir / "worker.log"
    timeline = WorkerTimeline(time.perf_counter())
    proc = await spawn([SEATFLOW, "worker", "--loglevel", "info"], worker_env(settings), log)
    spy = await start_py_spy(proc.pid, py_spy, run.workdir) if py_spy else None
    progress = Progress("worker (committed)", total)
    try:
        async with (
            GroupWatch(bootstrap, settings.consumer_group, source_tps, facts_tps) as watch,
            SinkPositions(settings, facts_topic) as sinks,
        ):
            await follow_worker(proc, watch, sinks, timeline, progress, total, limit_s, log)
    finally:
        if spy is not None:
            await stop_py_spy(spy)
        await stop(proc, grace_s=60)
    return worker_result(settings, timeline, total)


async def follow_worker(
    proc: asyncio.subprocess.Process,
    watch: GroupWatch,
    sinks: SinkPositions,
    timeline: WorkerTimeline,
    progress: Progress,
    total: int,
    limit_s: float,
    log: Path,
) -> None:
    """Sample every POLL_S until the group has committed everything of sources and facts."""
    deadline = time.monotonic() + limit_s
    while True:
        if proc.returncode is not None or time.monotonic() > deadline:
            raise SystemExit(f"worker exited or timed out:\n{log_tail(log)}")
        sample = await watch.sample()
        await sinks.fill(sample)
        timeline.samples.append(sample)
        if timeline.cpu_at_first is None and (sample.facts_end or sample.sources_committed):
            timeline.cpu_at_first = cpu_seconds(proc.pid)
        drained = sample.sources_committed == total and sample.facts_committed == sample.facts_end
        progress.update(
            sample.sources_committed,
            f"| seat-facts {sample.facts_end:,} msgs, applied redis "
            f"{sample.redis_applied:,} postgres {sample.postgres_applied:,}",
            force=drained,
        )
        if drained:
            timeline.cpu_at_end = cpu_seconds(proc.pid)
            return
        await asyncio.sleep(POLL_S)


def worker_result(settings: Settings, timeline: WorkerTimeline, total: int) -> PhaseResult:
    first, drained = timeline.first_activity(), timeline.samples[-1]
    applied = timeline.sinks_applied()
    cpu = None
    if timeline.cpu_at_first is not None and timeline.cpu_at_end is not None:
        cpu = timeline.cpu_at_end - timeline.cpu_at_first
    result = PhaseResult(
        "worker",
        f"seatflow worker ({settings.store.value} store)",
        total,
        drained.t - first.t,
        "first seat-facts/commit -> drained (all committed)",
        drained.t - timeline.spawned,
        cpu,
    )
    sink_s = applied.t - first.t
    result.notes += [
        f"start-up (spawn -> first activity): {first.t - timeline.spawned:.1f}s",
        f"sinks applied (both checkpoints at the end of seat-facts) after {sink_s:.1f}s: "
        f"{total / sink_s:,.0f} events/s; drain seen {drained.t - applied.t:.1f}s later",
        f"{drained.facts_end:,} seat-facts messages",
    ]
    return result


async def start_py_spy(pid: int, out: Path, workdir: Path) -> asyncio.subprocess.Process:
    """py-spy sampling the worker (raw collapsed stacks, 100 Hz, without pausing it)."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    cmd = [
        exe,
        "record",
        "--pid",
        str(pid),
        "--rate",
        "100",
        "--nonblocking",
        "--format",
        "raw",
        "--output",
        str(out),
    ]
    return await spawn(cmd, dict(os.environ), workdir / "py-spy.log")


async def stop_py_spy(proc: asyncio.subprocess.Process) -> None:
    """SIGINT makes py-spy write its output."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(proc.wait(), 60)
        except TimeoutError:
            proc.kill()


# ------------------------------------------------------------------------------ report


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "?",
    )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"machine: nproc {len(os.sched_getaffinity(0))} ({model}), load average {load}; "
        f"Python {platform.python_version()}, faust-streaming {version('faust-streaming')}, "
        f"aiokafka {version('aiokafka')}, mode-streaming {version('mode-streaming')}"
    )


def report(results: list[PhaseResult]) -> None:
    """The table, the notes, then the ratios by wall time (and by CPU time, steadier)."""
    if not results:
        return
    print()
    print(
        f"{'phase':<34} {'events':>9} {'seconds':>8} {'events/s':>9} {'w/ start-up':>11} "
        f"{'CPU s':>6} {'CPU/s':>5} {'ev/CPU-s':>8}  measured window"
    )
    for r in results:
        startup = f"{r.with_startup:.1f}" if r.with_startup is not None else "-"
        cpu = util = per_cpu = "-"
        if r.cpu_seconds:
            cpu, util = f"{r.cpu_seconds:.1f}", f"{r.cpu_seconds / r.seconds:.2f}"
            per_cpu = f"{r.events / r.cpu_seconds:,.0f}"
        print(
            f"{r.name:<34} {r.events:>9,} {r.seconds:>8.2f} {r.rate:>9,.0f} {startup:>11} "
            f"{cpu:>6} {util:>5} {per_cpu:>8}  {r.window}"
        )
    for r in results:
        for note in r.notes:
            print(f"  {r.name}: {note}")
    by = {r.phase: r for r in results}
    raw, faust_, worker = by.get("raw"), by.get("faust"), by.get("worker")
    lines = []
    for label, num, den, target in (
        ("worker / bare Faust agent", worker, faust_, 0.5),
        ("worker / raw aiokafka", worker, raw, None),
        ("bare Faust agent / raw aiokafka", faust_, raw, None),
    ):
        if num is None or den is None:
            continue
        ratio = num.rate / den.rate
        by_cpu = "-"
        if num.cpu_seconds and den.cpu_seconds:
            by_cpu = f"{(num.events / num.cpu_seconds) / (den.events / den.cpu_seconds):.3f}"
        verdict = "" if target is None else f"   target >= {target}: {_met(ratio >= target)}"
        lines.append(f"{label:<34} {ratio:6.3f} {by_cpu:>6}{verdict}")
    if lines:
        print(f"\n{'ratio':<34} {'wall':>6} {'CPU':>6}", *lines, sep="\n")
        print(
            "wall = events/s over the measured windows; CPU = events per CPU-second of the "
            "reader process alone (Kafka, PostgreSQL, Redis not counted): steadier under load"
        )


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


# ------------------------------------------------------------------------------ cleanup


async def cleanup(run: Run, settings: Settings) -> None:
    """Topics of the run's prefix, its PostgreSQL schema (and the worker's control row for
    it), its Redis keys, its directory."""
    conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(settings.pg_schema)} CASCADE")
        if await conn.fetchval(f"SELECT to_regclass('{CONTROL_TABLE}') IS NOT NULL"):
            await conn.execute(
                f"DELETE FROM {CONTROL_TABLE} WHERE read_model_schema = $1", settings.pg_schema
            )
    finally:
        await conn.close()
    client = aioredis.from_url(settings.redis_url.get_secret_value())
    try:
        keys = [k async for k in client.scan_iter(match=f"{settings.redis_prefix}*", count=1000)]
        for start in range(0, len(keys), 1000):
            await client.delete(*keys[start : start + 1000])
    finally:
        await client.aclose()
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(run.prefix)]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()
    shutil.rmtree(run.workdir, ignore_errors=True)
    print(
        f"cleaned up: {len(names)} topics, schema {settings.pg_schema}, "
        f"{len(keys):,} Redis keys, {run.workdir}"
    )


# ------------------------------------------------------------------------------ main


PHASES = ("raw", "faust", "worker")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Services: Kafka, PostgreSQL and Redis of `scripts/services up` (SEATFLOW_* "
        "variables are honoured). The numbers are wall-clock on whatever else the machine "
        "runs: compare ratios within one run, not figures across machines.",
    )
    parser.add_argument(
        "--events",
        type=int,
        default=200_000,
        help="about how many upstream events to produce (default: 200000)",
    )
    parser.add_argument("--seed", type=int, default=7, help="scenario seed (default: 7)")
    parser.add_argument(
        "--store",
        choices=[k.value for k in StoreKind],
        default="rocksdb",
        help="the worker's table store (default: rocksdb, the production "
        "default; in a temporary directory)",
    )
    parser.add_argument(
        "--phases",
        default=",".join(PHASES),
        help="comma-separated subset of raw,faust,worker (default: all)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=1800,
        help="give up on a phase after this many seconds (default: 1800)",
    )
    parser.add_argument(
        "--py-spy",
        type=Path,
        metavar="FILE",
        help="also sample the worker with py-spy (100 Hz, collapsed stacks to "
        "FILE; needs `pip install py-spy`); the profiler's CPU use slows the run down a little",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the topics, schema, Redis keys and the temporary directory "
        "(logs, RocksDB) of the run",
    )
    child = parser.add_argument_group("internal (the phase-2 subprocess)")
    child.add_argument("--faust-noop", action="store_true", help=argparse.SUPPRESS)
    for name in ("--group", "--bootstrap", "--topics", "--result", "--datadir"):
        child.add_argument(name, help=argparse.SUPPRESS)
    child.add_argument("--expect", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = set(args.phases.split(",")) - set(PHASES)
    if unknown:
        parser.error(f"unknown phase(s): {', '.join(sorted(unknown))}")
    return args


async def bench(args: argparse.Namespace) -> int:
    run_id = "bench" + uuid.uuid4().hex[:8]
    run = Run(run_id, Path(tempfile.mkdtemp(prefix=f"seatflow-{run_id}-")), load_settings())
    settings = run.worker_settings(StoreKind(args.store))
    catalog = load_catalog(settings)
    phases = args.phases.split(",")
    print(machine())
    print(
        f"run {run_id}: prefix {run.prefix!r}, worker group {settings.consumer_group}, "
        f"schema {settings.pg_schema}, Redis prefix {settings.redis_prefix!r}, "
        f"workdir {run.workdir}",
        flush=True,
    )
    results: list[PhaseResult] = []
    try:
        records = generate(args.events, args.seed)
        total = len(records)
        await create_topics(settings, catalog)
        await produce(settings, catalog, records)
        del records
        steps: dict[str, Callable[[], Awaitable[PhaseResult]]] = {
            "raw": lambda: measure_raw(settings, catalog, total),
            "faust": lambda: measure_faust(run, catalog, total, args.timeout),
            "worker": lambda: measure_worker(
                run, settings, catalog, total, args.timeout, args.py_spy
            ),
        }
        try:
            for phase in PHASES:
                if phase in phases:
                    print(f"phase {phase} ...", flush=True)
                    results.append(await steps[phase]())
                    print(f"  -> {results[-1].rate:,.0f} events/s", flush=True)
        finally:  # what was measured is worth seeing even when a later phase failed
            report(results)
            print(machine())
    finally:
        if args.keep:
            print(f"kept: prefix {run.prefix!r}, schema {settings.pg_schema}, {run.workdir}")
        else:
            await cleanup(run, settings)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.faust_noop:
        return faust_noop_child(args)
    return asyncio.run(bench(args))


if __name__ == "__main__":
    sys.exit(main())
