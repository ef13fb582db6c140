"""A replay, start to finish: plan, fold batch by batch into the shadow, catch up, swap.

Per batch, the same order of durability as the live seat stage:

1. record the batch's source ranges (shadow.py), so it can be processed again identically;
2. read and fold it (fold.py) into the in-memory seat states;
3. write the changed states to the new generation's changelog and AWAIT them (the seat
   table may be ahead of the sinks, never behind);
4. apply the batch's mutations to the shadow sinks, each atomically with its checkpoint
   (Redis: the batch's values first, in small idempotent pieces, then its counters with
   the checkpoint; see shadow.ShadowRedisSink).

Steps 3-4 of one batch overlap step 2 of the next (the folding yields to the event loop
between chunks), and a batch's step 3 overlaps the previous batch's step 4; a batch's
sinks start only after the previous batch's have finished, as their checkpoints require.

Resume: the states come back from the changelog, the resume point is the lowest batch a
shadow sink has not applied, recorded batches from there are processed again (the seat
state machine gives their facts the same mutations at the same positions and each sink
skips what it has), then new batches continue from the end of the last recorded one.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
import redis.asyncio as aioredis
from aiokafka.admin import AIOKafkaAdminClient

from workers.generation import (
    CONTROL_SCHEMA,
    LIVE,
    SWAPPING,
    ControlRow,
    Pipeline,
    old_prefix,
    old_schema,
    pipeline_for,
    read_control,
    redis_generation_key,
    redis_value,
    shadow_prefix,
    shadow_schema,
)
from workers.kafka_clients import client_kwargs
from workers.projection.seat import SeatState
from workers.replay import swap
from workers.replay.decoders import Decoders, ReadTask, decoded
from workers.replay.fold import (
    BatchFold,
    PlainRecord,
    decode_chunk,
    encode_seat,
    plain,
)
from workers.replay.plan import (
    DEFAULT_BATCH_EVENTS,
    EARLIEST,
    LATEST,
    Offsets,
    Plan,
    SourcePartition,
    describe_point,
    next_ranges,
    parse_point,
    resolve,
)
from workers.replay.progress import Rate, Reporter, Tick
from workers.replay.shadow import (
    MODELS,
    ChangelogWriter,
    Ranges,
    RunRecord,
    Shadow,
    read_changelog,
)
from workers.replay.source import SourceReader
from workers.replay.spool import Handoff
from workers.settings import Settings
from workers.topic_admin import ActionKind
from workers.topic_admin import apply as apply_topics
from workers.topic_admin import plan as plan_topics
from workers.topic_catalog import TopicCatalog, TopicRole
from workers.verify.topics import partitions_of

SEAT_FACTS = "seatflow.seat-facts"
SEATS_CHANGELOG = "{group}-seats-changelog"
CHUNK = 250
"""Records or seats folded between two yields to the event loop: the changelog writes and
sink transactions of the previous batch run in this loop meanwhile, one step per yield."""
REDIS_TIMEOUT_S = 120.0
POOL_MIN_EVENTS = 100_000
"""Below this, starting decoding processes (~1 s) costs more than it saves."""
MAX_DEFAULT_DECODERS = 4
"""Decoding processes by default at most: this process folds about one event in 31 us and a
decoder reads and decodes one in about 27 us, so beyond a few decoders the others only
wait (and each holds its own interpreter and heap)."""

T = TypeVar("T")


class ReplayRefused(Exception):
    """The stores are in a state that makes the command impossible (exit code 2)."""


@dataclass(frozen=True, slots=True)
class Options:
    from_spec: str = EARLIEST
    to_spec: str | None = None
    """None: the end offsets at start, then catch up with the live stream."""
    models: str = "all"
    swap: bool = True
    batch_events: int = DEFAULT_BATCH_EVENTS
    """Records per batch (`plan.DEFAULT_BATCH_EVENTS`). Large: a seat is derived, encoded,
    saved and written once per batch it appears in, so the cost per event falls with the
    batch size (a replay holds every seat state in memory anyway)."""
    catch_up_threshold: int | None = None
    """Fence the live generation once fewer events than this remain (default: half a
    batch, at most 10,000): the final catch-up, while the live copy is frozen, is then
    about one batch."""
    dry_run: bool = False
    decode_processes: int | None = None
    """Worker processes that read and decode the batches (`decoders.py`; None: one per
    core, at most `MAX_DEFAULT_DECODERS`, for replays of at least `POOL_MIN_EVENTS`; 0:
    read and decode in this process). One per core, not one fewer: they decode the first
    batch on every core while this process has nothing to fold yet, and later take, at a
    lower priority, what it leaves of the cores (bench/replay.py on two cores: 0.94 of
    the time with one)."""

    def recorded(self) -> dict[str, Any]:
        """What a resumed run must ask for again (swap may change: build now, swap later)."""
        return {"from": self.from_spec, "to": self.to_spec, "models": self.models}


@dataclass(slots=True)
class Summary:
    source_generation: int
    target_generation: int | None = None
    dry_run: bool = False
    resumed: bool = False
    resumed_from_batch: int | None = None
    batches: int = 0
    reprocessed_batches: int = 0
    events_read: int = 0
    facts: int = 0
    rejected: int = 0
    seats_saved: int = 0
    seats: int = 0
    swapped: bool = False
    fenced_s: float | None = None
    """How long the live copy was frozen (fence to swap)."""
    seconds: float = 0.0
    events_per_s: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    shadow_schema: str = ""
    shadow_prefix: str = ""
    handover: dict[str, int] = field(default_factory=dict)
    """Source partition -> offset where the new generation's workers continue."""
    message: str = ""

    def doc(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        if self.dry_run:
            return [f"replay: {self.message}"]
        phases = ", ".join(f"{name} {secs:.1f}s" for name, secs in self.phases.items())
        out = [
            f"replay: {self.message}",
            f"  {self.events_read:,} events ({self.facts:,} facts, {self.rejected:,} "
            f"rejected) in {self.batches:,} batches ({self.reprocessed_batches} again) in "
            f"{self.seconds:.1f}s: {self.events_per_s:,.0f} events/s",
        ]
        if phases:
            out.append(f"  time: {phases}")
        if self.fenced_s is not None:
            out.append(f"  live copy frozen for {self.fenced_s:.1f}s (fence to swap)")
        return out


def _flags(options: dict[str, Any]) -> str:
    flags = [f"--from {options['from']}", f"--models {options['models']}"]
    if options.get("to") is not None:
        flags.append(f"--to {options['to']}")
    return " ".join(flags)


def default_decoders(events: int, cpus: int | None) -> int:
    """Decoding processes for a replay of `events` on `cpus` cores (`Options.decode_processes`)."""
    if events < POOL_MIN_EVENTS:
        return 0
    return min(cpus or 1, MAX_DEFAULT_DECODERS)


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


AGAIN, REPLAY, FINAL = "again", "replay", "final catch-up"
"""Phases of a batch: recorded by an earlier run, planned now, after the fence."""


@dataclass(slots=True)
class Prepared:
    """A batch fetched and (maybe) being decoded, waiting for the projecting stage."""

    batch_no: int
    ranges: Ranges
    phase: str
    records: list[PlainRecord]
    """Read by this process, to decode here (no decoding processes)."""
    decoding: list[tuple[ReadTask, asyncio.Future[Handoff]]] | None
    """Chunks being read and decoded by the decoding processes, in order; None: here."""


class Replay:
    def __init__(self, base: Settings, options: Options, reporter: Reporter) -> None:
        if options.models not in MODELS:
            raise ReplayRefused(f"--models must be one of {sorted(MODELS)}")
        self.base = base
        self.options = options
        self.models = MODELS[options.models]
        self.reporter = reporter
        self.phases = dict.fromkeys(
            ("fetch", "decode", "project", "encode", "changelog", "sinks", "sinks_wait"),
            0.0,
        )
        self.states: dict[str, SeatState] = {}
        self.decoders: Decoders | None = None

    # ------------------------------------------------------------ entry point
    async def run(self) -> Summary:
        started = time.monotonic()
        dsn = self.base.postgres_dsn.get_secret_value()
        self.pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
        # A generous read timeout (redis-py's default is 5 s): one shadow write of a large
        # batch, or the swap script, can keep Redis busy for seconds.
        self.client = aioredis.from_url(
            self.base.redis_url.get_secret_value(), decode_responses=True,
            socket_timeout=REDIS_TIMEOUT_S,
        )  # fmt: skip
        # No automatic cyclic collection while folding: a batch allocates millions of
        # objects (facts, views, mutations), all acyclic and freed by reference counting,
        # and each automatic collection re-scans every one allocated since the last
        # `gc.freeze()` (a fifth of the main process's CPU with batches of 250,000). The
        # few cycles the clients make meanwhile are collected at the end.
        collecting = gc.isenabled()
        gc.disable()
        try:
            summary = await self._run()
        finally:
            gc.unfreeze()
            if collecting:
                gc.enable()
            await self.client.aclose()
            await self.pool.close()
        summary.seconds = time.monotonic() - started
        if summary.seconds > 0:
            summary.events_per_s = summary.events_read / summary.seconds
        summary.phases = {k: round(v, 3) for k, v in self.phases.items() if v}
        return summary

    async def _control(self) -> ControlRow:
        async with self.pool.acquire() as conn:
            return await read_control(conn, self.base.pg_schema, self.base.redis_prefix)

    async def _run(self) -> Summary:
        base = self.base
        control = await self._control()
        fence_value = await self.client.get(redis_generation_key(base.redis_prefix))
        summary = Summary(
            source_generation=control.generation,
            dry_run=self.options.dry_run,
            shadow_schema=shadow_schema(base.pg_schema),
            shadow_prefix=shadow_prefix(base.redis_prefix),
        )
        if (
            control.state == LIVE
            and control.previous is not None
            and fence_value == redis_value(control.previous, control.generation)
        ):
            # PostgreSQL swapped, Redis not (the previous run stopped in between).
            if not self.options.dry_run:
                moved = await swap.swap_redis(
                    self.client, base, control.previous, control.generation
                )
                summary.swapped = True
                self.reporter.event(f"finished the Redis half of the swap ({moved} keys)")
            summary.source_generation = control.previous
            summary.target_generation = control.generation
            summary.message = f"generation {control.generation} is live in both stores"
            return summary

        shadow = Shadow(base, self.pool, self.client)
        lock = None if self.options.dry_run else await shadow.run_lock()
        if lock is None and not self.options.dry_run:
            raise ReplayRefused(f"another replay of schema {base.pg_schema} is running")
        try:
            return await self._build(control, shadow, summary)
        finally:
            if lock is not None:
                await lock.close()

    # ------------------------------------------------------------ the build
    async def _build(self, control: ControlRow, shadow: Shadow, summary: Summary) -> Summary:
        base, options, reporter = self.base, self.options, self.reporter
        run = await shadow.load_run()
        if control.state == SWAPPING and (run is None or run.target != control.target):
            raise ReplayRefused(
                f"generation {control.generation} is fenced for a swap to "
                f"{control.target}, but no shadow of it exists: run `seatflow replay --abort`"
            )
        if run is not None:
            if run.options != options.recorded():
                raise ReplayRefused(
                    f"a replay with other options is in progress ({_flags(run.options)}): "
                    "run it again with those to finish it, or discard it with "
                    "`seatflow replay --abort`"
                )
            if run.source_generation != control.generation:
                raise ReplayRefused(
                    f"the shadow was built to replace generation {run.source_generation}, "
                    f"but {control.generation} is live: discard it (`seatflow replay --abort`)"
                )
            target = run.target
        else:
            async with self.pool.acquire() as conn:
                if not options.dry_run and await swap.old_copy_exists(conn, self.client, base):
                    raise ReplayRefused(
                        "the copy replaced by the last swap still exists "
                        f"({old_schema(base.pg_schema)}, {old_prefix(base.redis_prefix)}*): "
                        "drop it first with "
                        "`seatflow replay --drop-old`"
                    )
            target = max(control.generation, control.last_target or 0) + 1
        summary.target_generation = target
        pipeline = pipeline_for(base, target)
        partitions = await self._source_partitions(pipeline.catalog)
        by_label = {sp.label: sp for sp in partitions}

        reader = self.reader = SourceReader(base, partitions, on_wait=reporter.event)
        await reader.start()
        try:
            if run is not None:
                starts = {sp: run.starts[sp.label] for sp in partitions}
                fixed = {by_label[k]: v for k, v in run.ends.items()} if run.ends else None
            else:
                now = datetime.now(UTC)
                point = parse_point(options.from_spec, now=now, allow=EARLIEST)
                starts = await resolve(reader.consumer, partitions, point)
                fixed = None
                if options.to_spec is not None:
                    until = parse_point(options.to_spec, now=now, allow=LATEST)
                    fixed = await resolve(reader.consumer, partitions, until)
            ends = fixed or await reader.end_offsets()
            plan = Plan(starts, {sp: max(ends[sp], starts[sp]) for sp in partitions})
            handover = options.swap and fixed is None and options.models == "all"
            doc, lines = self._plan_report(control, target, plan, handover, run is not None)
            if options.dry_run:
                reporter.plan(doc, lines)
                summary.message = "dry run: nothing written"
                return summary
            if run is None:
                run = RunRecord(
                    target, control.generation, options.recorded(),
                    {sp.label: starts[sp] for sp in partitions},
                    {sp.label: fixed[sp] for sp in partitions} if fixed else None,
                )  # fmt: skip
                async with self.pool.acquire() as conn:
                    await conn.execute(
                        f"UPDATE {CONTROL_SCHEMA}.generations SET last_target = $2 "
                        "WHERE read_model_schema = $1",
                        base.pg_schema, target,
                    )  # fmt: skip
                await self._ensure_topics(pipeline)
                await shadow.create(run, self.models)
            else:
                summary.resumed = True
                await self._ensure_topics(pipeline)
            reporter.plan(doc, lines)
            shadow.open_sinks(self.models)
            processes = options.decode_processes
            if processes is None:
                processes = default_decoders(plan.events(), os.cpu_count())
            self.decoders = Decoders(base, processes) if processes > 0 else None
            if self.decoders is not None:
                reader.pause()  # they read the batches; this reader only asks for offsets
            try:
                await self._fold_all(
                    control, pipeline, shadow, reader, partitions, plan, fixed, handover, summary
                )
            finally:
                if self.decoders is not None:
                    self.decoders.close()
        finally:
            await reader.stop()
        summary.seats = len(self.states)
        return summary

    async def _fold_all(
        self,
        control: ControlRow,
        pipeline: Pipeline,
        shadow: Shadow,
        reader: SourceReader,
        partitions: list[SourcePartition],
        plan: Plan,
        fixed: Offsets | None,
        handover: bool,
        summary: Summary,
    ) -> None:
        base, reporter = self.base, self.reporter
        target = pipeline.generation
        changelog = pipeline.catalog.get(SEATS_CHANGELOG)
        if summary.resumed:
            reporter.event(f"reading the seat table back from {changelog.name}")
            started = time.perf_counter()
            self.states = await read_changelog(base, changelog.name, changelog.partitions)
            reporter.event(
                f"{len(self.states):,} seat states read in {time.perf_counter() - started:.1f}s"
            )
        recorded = await shadow.recorded_batches(
            {(sp.logical, sp.partition): sp for sp in partitions}
        )
        resume_at = await shadow.next_batch(target)
        planned = dict(plan.starts)
        for batch_no in sorted(recorded):
            for sp, (_, hi) in recorded[batch_no].items():
                planned[sp] = hi
        if summary.resumed:
            summary.resumed_from_batch = resume_at
            reporter.event(
                f"resuming at batch {resume_at} ({len(recorded) - resume_at} recorded batches "
                "to process again)"
            )
        # What the sinks have applied, per source partition, as batches complete.
        done = dict(plan.starts)
        for batch_no in range(resume_at):
            for sp, (_, hi) in recorded[batch_no].items():
                done[sp] = hi
        self.fenced_at: float | None = time.monotonic() if control.state == SWAPPING else None
        writer = ChangelogWriter(base, changelog.name, changelog.partitions)
        await writer.start()
        self._commits: list[asyncio.Task[None]] = []
        self._applied = resume_at
        """Every batch below this one is applied by the sinks (`_commit`)."""
        self._applied_moved = asyncio.Condition()
        """The batches' writes in flight (`_commit`), oldest first; at most two."""
        self._queued: asyncio.Future[None] | None = None
        """Done once the newest commit has queued its changelog records."""
        self._started = time.monotonic()
        self._rate = Rate(start=(self._started, summary.events_read))
        queue: asyncio.Queue[Prepared | BaseException | None] = asyncio.Queue(maxsize=2)
        producer = asyncio.create_task(
            self._prepare_all(
                queue, control, shadow, reader, plan, fixed, handover, planned, recorded,
                resume_at, target,
            )
        )  # fmt: skip
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                await self._batch(shadow, writer, target, item, summary)
                summary.reprocessed_batches += item.phase == AGAIN
                for sp, (_, hi) in item.ranges.items():
                    done[sp] = hi
                self._tick(item.phase, item.batch_no, summary, plan, done)
            await self._wait_sinks()
            await self._build_indexes(shadow)
        finally:
            producer.cancel()
            for task in self._commits:
                if not task.done():
                    task.cancel()
            await writer.stop()
        summary.handover = {sp.label: done[sp] for sp in partitions}
        if not handover:
            summary.message = (
                f"shadow copy built for generation {target} ({shadow.schema}, "
                f"{shadow.prefix}*); not swapped"
            )
            return
        await self._hand_over(control, pipeline, partitions, done, summary)

    async def _prepare_all(
        self,
        queue: asyncio.Queue[Prepared | BaseException | None],
        control: ControlRow,
        shadow: Shadow,
        reader: SourceReader,
        plan: Plan,
        fixed: Offsets | None,
        handover: bool,
        planned: Offsets,
        recorded: dict[int, Ranges],
        resume_at: int,
        target: int,
    ) -> None:
        """The first stage: plan, record, fetch and start decoding batches, ahead of the
        stage that projects them (at most two batches ahead)."""
        try:
            for batch_no in range(resume_at, max(recorded, default=-1) + 1):
                await queue.put(await self._prepare(batch_no, recorded[batch_no], AGAIN))
            batch_no = max(recorded, default=-1) + 1
            threshold = self.options.catch_up_threshold
            if threshold is None:
                threshold = max(1, min(self.options.batch_events // 2, 10_000))
            fenced = self.fenced_at is not None
            if fenced and handover:
                plan.ends = await reader.end_offsets()  # a rerun after the fence: S now
            while True:
                if handover and not fenced:
                    plan.ends = await reader.end_offsets()
                    if plan.events(planned) <= threshold:
                        # The indexes from the filled tables, not while the live copy
                        # waits; then the lag again, which may have grown meanwhile.
                        if await self._build_indexes(shadow, applied_below=batch_no):
                            continue
                        await self._fence(control, target)
                        fenced = True
                        plan.ends = await reader.end_offsets()  # S
                ranges = next_ranges(planned, plan.ends, self.options.batch_events)
                if not ranges:
                    if fenced or not handover:
                        break
                    continue
                await shadow.record_batch(batch_no, ranges)  # before it is processed
                prepared = await self._prepare(
                    batch_no, ranges, FINAL if fenced and handover else REPLAY
                )
                for sp, (_, hi) in ranges.items():
                    planned[sp] = hi
                await queue.put(prepared)
                batch_no += 1
            await queue.put(None)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # handed to the other stage, which raises it
            await queue.put(exc)

    async def _build_indexes(self, shadow: Shadow, applied_below: int | None = None) -> bool:
        """The shadow's deferred secondary indexes (`indexes.py`), if any are missing,
        once the batches below `applied_below` are applied (the rows still to come are
        few: the indexes are built from the filled tables); whether any were built."""
        if not await shadow.indexes_pending():
            return False
        if applied_below is not None:
            self.reporter.event(
                "writing the batches read so far, then building the shadow's indexes"
            )
            async with self._applied_moved:
                await self._applied_moved.wait_for(lambda: self._applied >= applied_below)
        started = time.perf_counter()
        built = await shadow.build_indexes()
        seconds = time.perf_counter() - started
        self.phases["indexes"] = self.phases.get("indexes", 0.0) + seconds
        self.reporter.event(
            f"built the shadow's {len(built)} secondary indexes in {seconds:.1f}s "
            f"(deferred while its tables filled): {', '.join(built)}"
        )
        return bool(built)

    async def _fence(self, control: ControlRow, target: int) -> None:
        self.reporter.event(
            f"fencing generation {control.generation}: its workers stop writing, the live "
            "copy is frozen until the swap"
        )
        async with self.pool.acquire() as conn:
            await swap.fence(conn, self.client, self.base, control.generation, target)
        self.fenced_at = time.monotonic()

    async def _prepare(self, batch_no: int, ranges: Ranges, phase: str) -> Prepared:
        if self.decoders is not None:
            return Prepared(batch_no, ranges, phase, [], self.decoders.submit(ranges))
        started = time.perf_counter()
        fetched = await self.reader.read(ranges)
        records = [
            plain(sp.logical, record) for sp in sorted(fetched) for record in fetched[sp]
        ]  # the batch's fixed processing order: partitions sorted, offsets up
        self.phases["fetch"] += time.perf_counter() - started
        return Prepared(batch_no, ranges, phase, records, None)

    async def _hand_over(
        self,
        control: ControlRow,
        pipeline: Pipeline,
        partitions: list[SourcePartition],
        done: Offsets,
        summary: Summary,
    ) -> None:
        base, reporter, target = self.base, self.reporter, pipeline.generation
        group = pipeline.settings.consumer_group
        fenced_at = self.fenced_at
        reporter.event(
            f"caught up ({time.monotonic() - fenced_at:.1f}s after the fence); "
            f"committing {group} at the end offsets, swapping"
            if fenced_at is not None
            else "swapping"
        )
        step = time.perf_counter()
        await swap.commit_offsets(base, group, {sp.tp: done[sp] for sp in partitions})
        async with self.pool.acquire() as conn:
            await swap.swap_postgres(conn, base, control.generation, target)
        self.phases["swap_postgres"] = time.perf_counter() - step
        step = time.perf_counter()
        moved = await swap.swap_redis(self.client, base, control.generation, target)
        self.phases["swap_redis"] = time.perf_counter() - step
        summary.swapped = True
        summary.fenced_s = time.monotonic() - fenced_at if fenced_at is not None else None
        summary.message = (
            f"generation {target} is live ({moved:,} redis keys moved); the old copy is "
            f"kept as {old_schema(base.pg_schema)} and {old_prefix(base.redis_prefix)}* "
            "until `seatflow replay --drop-old`"
        )

    # ------------------------------------------------------------ one batch
    async def _batch(
        self,
        shadow: Shadow,
        writer: ChangelogWriter,
        target: int,
        prepared: Prepared,
        summary: Summary,
    ) -> None:
        phases = self.phases
        t1 = time.perf_counter()
        fold = BatchFold(prepared.batch_no)
        if prepared.decoding is not None:
            for task, chunk in prepared.decoding:  # in order
                fold.add_wire(await decoded(task, chunk, self.reporter.event))
        else:
            for records in _chunks(prepared.records, CHUNK):
                fold.add(decode_chunk(records))
                await asyncio.sleep(0)  # let the previous batch's sink writes progress
        t2 = time.perf_counter()
        for seats in _chunks(list(fold.by_seat), CHUNK):
            fold.project(self.states, seats)
            await asyncio.sleep(0)
        fold.finish()
        t3 = time.perf_counter()
        encoded: list[tuple[str, bytes]] = []
        for seats in _chunks(fold.changed, CHUNK):
            encoded += [(seat, encode_seat(self.states[seat], fold.wires)) for seat in seats]
            await asyncio.sleep(0)
        # Encoded now (the next batch changes the states in place); sent by `_commit`.
        t4 = time.perf_counter()
        # Two batches' writes in flight at most: this batch's changelog goes out while the
        # previous batch's sinks write (the seat table ahead of the sinks, as allowed),
        # after the previous batch's changelog (a seat's later state after its earlier
        # one); its sinks wait for the previous batch's (the checkpoints' order).
        while len(self._commits) >= 2:
            await self._commits.pop(0)
        t5 = time.perf_counter()
        previous = self._commits[-1] if self._commits else None
        queued = asyncio.get_running_loop().create_future()
        self._commits.append(
            asyncio.create_task(
                self._commit(
                    shadow, writer, target, prepared.batch_no, fold, encoded,
                    previous, self._queued, queued,
                )
            )
        )  # fmt: skip
        self._queued = queued
        phases["decode"] += t2 - t1
        phases["project"] += t3 - t2
        phases["encode"] += t4 - t3
        phases["sinks_wait"] += t5 - t4
        summary.batches += 1
        summary.events_read += fold.events
        summary.facts += fold.facts
        summary.rejected += fold.rejected
        summary.seats_saved += len(encoded)
        # The seat states only grow and live until the end: keep the cyclic collector (off
        # during the run, see `run`) from ever scanning them (they are still freed by
        # reference counting; `run` unfreezes at the end).
        gc.freeze()

    async def _commit(
        self,
        shadow: Shadow,
        writer: ChangelogWriter,
        target: int,
        batch_no: int,
        fold: BatchFold,
        encoded: list[tuple[str, bytes]],
        previous: asyncio.Task[None] | None,
        queued_before: asyncio.Future[None] | None,
        queued: asyncio.Future[None],
    ) -> None:
        """The changelog acknowledged, then the sinks: the seat table ahead of the sinks,
        never behind. Runs while the next batch is folded. Its changelog records are
        queued once the previous batch's are (`queued_before`), so that they land after
        them; its sinks start once the previous batch's have finished (`previous`), as
        the checkpoints require, and not at all if those failed."""
        started = time.perf_counter()
        try:
            if queued_before is not None:
                await queued_before
            acks = await writer.send(encoded)
        finally:
            if not queued.done():
                queued.set_result(None)
        await asyncio.gather(*acks)
        acked = time.perf_counter()
        if previous is not None:
            await previous
        applying = time.perf_counter()
        stores = await shadow.apply(target, batch_no, fold.finish())
        async with self._applied_moved:
            self._applied = batch_no + 1
            self._applied_moved.notify_all()
        self.phases["changelog"] += acked - started
        self.phases["sinks"] += time.perf_counter() - applying
        for name, seconds in stores.items():
            self.phases[f"sinks_{name}"] = self.phases.get(f"sinks_{name}", 0.0) + seconds

    async def _wait_sinks(self) -> None:
        while self._commits:
            await self._commits.pop(0)

    # ------------------------------------------------------------ helpers
    def _tick(
        self, phase: str, batch_no: int, summary: Summary, plan: Plan, positions: Offsets
    ) -> None:
        now = time.monotonic()
        rate = self._rate.add(now, summary.events_read)
        remaining = plan.events(positions)
        self.reporter.tick(
            Tick(
                phase=phase,
                batch_no=batch_no,
                events=summary.events_read,
                total=summary.events_read + remaining,
                partitions=[(sp.label, positions[sp], plan.ends[sp]) for sp in sorted(plan.ends)],
                elapsed_s=round(now - self._started, 3),
                rate=round(rate, 1),
                eta_s=round(remaining / rate, 1) if rate > 0 else None,
            )
        )

    async def _source_partitions(self, catalog: TopicCatalog) -> list[SourcePartition]:
        logical = {spec.name: spec.logical for spec in catalog.sources()}
        tps = await partitions_of(self.base, list(logical))
        return sorted(SourcePartition(logical[tp.topic], tp.partition, tp.topic) for tp in tps)

    async def _ensure_topics(self, pipeline: Pipeline) -> None:
        """The new generation's own topics (seat-facts, its dead letters, the changelog)."""
        admin = AIOKafkaAdminClient(**client_kwargs(self.base))
        await admin.start()
        try:
            current = await plan_topics(pipeline.catalog, admin)
            missing = [
                a.spec.name for a in current.of_kind(ActionKind.CREATE)
                if a.spec.role is TopicRole.SOURCE
            ]  # fmt: skip
            if missing:
                raise ReplayRefused(f"source topic(s) missing: {', '.join(missing)}")
            await apply_topics(pipeline.catalog, admin)
        finally:
            await admin.close()

    def _plan_report(
        self, control: ControlRow, target: int, plan: Plan, handover: bool, resumed: bool
    ) -> tuple[dict[str, Any], list[str]]:
        base, options = self.base, self.options
        doc = {
            "source_generation": control.generation,
            "target_generation": target,
            "resumed": resumed,
            "from": options.from_spec,
            "to": options.to_spec or LATEST,
            "models": options.models,
            "swap": handover,
            "shadow_schema": shadow_schema(base.pg_schema),
            "shadow_prefix": shadow_prefix(base.redis_prefix),
            "partitions": plan.rows(),
            "events": plan.events(),
        }
        then = "then catch up, fence, swap" if handover else "no swap"
        lines = [
            f"replay plan: generation {control.generation} -> {target}"
            + (" (resuming)" if resumed else ""),
            f"  shadow: schema {doc['shadow_schema']}, redis {doc['shadow_prefix']}*; "
            f"models: {options.models}; from {describe_point(options.from_spec)} to "
            f"{options.to_spec or 'the end offsets now'}; {then}",
            f"  {'topic':<22} {'partition':>9} {'start':>12} {'end':>12} {'events':>12}",
        ]
        lines += [
            f"  {r['topic']:<22} {r['partition']:>9} {r['start']:>12,} {r['end']:>12,} "
            f"{r['events']:>12,}"
            for r in doc["partitions"]
        ]
        lines.append(f"  total events: {doc['events']:,}")
        return doc, lines
