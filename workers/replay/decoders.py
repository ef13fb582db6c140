"""Decoding processes: each reads its share of a batch from Kafka itself and decodes it.

Why they read, and not the projecting process: that process is the replay's critical path
(it projects, encodes and writes every batch alone), and parsing Kafka's record batches,
copying the records into plain tuples and pickling them over to a decoder cost it about
5 s of CPU per million records (`bench/replay.py`), while the decoders finish their share
long before it. A decoder is sent an offset range of one partition, reads exactly that
(`RangeReader`), decodes it and sends back the facts in their wire form
(`fold.decode_chunk_wire`); the projecting process only puts the chunks in order.

Why they run at a lower priority (`DECODER_NICENESS`): for the same reason. When every
core is busy, the scheduler shares them evenly, and the projecting process got two thirds
of a core while decoders raced ahead to batches it could not take yet. At a lower
priority they use what it leaves. It still waits for them at times: for the first batch,
and while PostgreSQL and Redis (at normal priority) write a batch and squeeze them.

Why a chunk comes back through a file (`spool.py`): through the pool's pipe, a decoder
waited on the busy projecting process for every 64 KiB of its chunk.

Spawned processes: forking a process that runs an event loop and Kafka clients is not safe.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import shutil
import signal
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import OffsetOutOfRangeError

from workers.heap import keep_freed_heap
from workers.replay.fold import PlainRecord, WireChunk, decode_chunk_wire, plain
from workers.replay.plan import SourcePartition
from workers.replay.source import WAIT_REPORT_S, consumer_for, log_start, records_gone
from workers.replay.spool import Handoff, hand_off, make_spool, take
from workers.settings import Settings

DECODE_CHUNK = 10_000
"""At most this many records per task: a batch comes back in pieces that the projecting
process takes in between other work (the previous batch's sinks)."""
MIN_CHUNK = 250
DECODER_NICENESS = 10
"""Added to a decoding process's nice value (see the module docstring)."""
RANGE_FETCH_BYTES = 2 * 1024 * 1024
"""A decoder's fetch size per partition: about 6,000 records. Not larger: what a decoder
fetched beyond its range is dropped when it moves to its next range, which is rarely the
next one of the same partition (the pool hands ranges to whichever process is free)."""


class DecoderLost(RuntimeError):
    """A decoding process ended abruptly (killed, out of memory): the replay stops; the
    same command resumes it from its checkpoints."""

    def __init__(self) -> None:
        super().__init__(
            "a decoding process ended abruptly (killed, or out of memory?); the replay "
            "stopped: run the same command again to resume from its checkpoints"
        )


ReadTask = tuple[str, str, int, int, int]
"""(logical topic, topic, partition, start offset, end offset): a range to read and decode."""


def tasks_for(ranges: dict[SourcePartition, tuple[int, int]], processes: int) -> list[ReadTask]:
    """A batch's ranges cut into tasks, in the batch's processing order (partitions sorted,
    offsets up): about two per process, at most `DECODE_CHUNK` records each."""
    total = sum(hi - lo for lo, hi in ranges.values())
    size = max(MIN_CHUNK, min(DECODE_CHUNK, -(-total // (2 * max(1, processes)))))
    return [
        (sp.logical, sp.topic, sp.partition, start, min(start + size, hi))
        for sp in sorted(ranges)
        for lo, hi in (ranges[sp],)
        for start in range(lo, hi, size)
    ]


class RangeReader:
    """A decoding process's consumer: reads one offset range at a time, exactly.

    One partition assigned at a time, and `max_records` bounds each poll by what the range
    still lacks, so nothing beyond the range is parsed (aiokafka unpacks records lazily).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.consumer: AIOKafkaConsumer | None = None
        self.assigned: TopicPartition | None = None

    async def read(self, task: ReadTask) -> list[PlainRecord]:
        logical, topic, partition, start, end = task
        if self.consumer is None:
            self.consumer = consumer_for(self.settings, partition_fetch_bytes=RANGE_FETCH_BYTES)
            await self.consumer.start()
        consumer = self.consumer
        tp = TopicPartition(topic, partition)
        if self.assigned != tp:
            consumer.assign([tp])
            self.assigned = tp
            consumer.seek(tp, start)
        elif await consumer.position(tp) != start:
            consumer.seek(tp, start)
        out: list[PlainRecord] = []
        # Offsets can have gaps (transaction markers): the position, not the last record,
        # says whether the range is complete.
        while (position := await consumer.position(tp)) < end:
            try:
                fetched = await consumer.getmany(tp, timeout_ms=500, max_records=end - position)
            except OffsetOutOfRangeError:
                label = f"{logical}/{partition}"
                raise records_gone(label, position, await log_start(consumer, tp)) from None
            out += [plain(logical, r) for r in fetched.get(tp, ()) if r.offset < end]
        return out


_loop: asyncio.AbstractEventLoop | None = None
_reader: RangeReader | None = None
_spool: Path | None = None


def _start(settings: Settings, spool: Path, parent: int) -> None:
    """A decoding process's initializer: its lifetime, heap policy, priority, reader."""
    global _loop, _reader, _spool
    _die_with(parent)
    keep_freed_heap()
    os.nice(DECODER_NICENESS)
    _loop = asyncio.new_event_loop()
    _reader = RangeReader(settings)
    _spool = spool


def read_and_decode(task: ReadTask) -> Handoff:
    """A task, in a decoding process: its records read from Kafka and decoded, the chunk
    handed off through a file (`spool.take` gets it back)."""
    assert _loop is not None and _reader is not None and _spool is not None, (
        "not a decoding process"
    )
    return hand_off(decode_chunk_wire(_loop.run_until_complete(_reader.read(task))), _spool)


PR_SET_PDEATHSIG = 1


def _die_with(parent: int) -> None:
    """Have Linux kill this process when the replay process ends, however it ends.

    Why: the pool stops its processes only when the replay process exits normally. A
    replay stopped alone (a SIGTERM or kill -9 of its pid, not of its process group) left
    them running, idle, with their memory and Kafka connections, for as long as nobody
    noticed. They have nothing to finish: their chunk files are swept by the next run."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: as before
        return
    if os.getppid() != parent:  # it ended before the request was made
        os._exit(1)


class Decoders:
    """The pool of decoding processes."""

    def __init__(self, settings: Settings, processes: int, spool: Path | None = None) -> None:
        self.processes = processes
        self.spool = make_spool(spool)
        """Where the decoders leave their chunks (`spool.py`); removed by `close`."""
        try:
            self.pool = ProcessPoolExecutor(
                processes, mp_context=get_context("spawn"), initializer=_start,
                initargs=(settings, self.spool, os.getpid()),
            )  # fmt: skip
        except BaseException:
            shutil.rmtree(self.spool, ignore_errors=True)
            raise

    def submit(
        self, ranges: dict[SourcePartition, tuple[int, int]]
    ) -> list[tuple[ReadTask, asyncio.Future[Handoff]]]:
        """A batch's ranges read and decoded by the pool; the chunks in processing order."""
        loop = asyncio.get_running_loop()
        out = []
        try:
            for task in tasks_for(ranges, self.processes):
                chunk = loop.run_in_executor(self.pool, read_and_decode, task)
                chunk.add_done_callback(_seen)
                out.append((task, chunk))
        except BrokenProcessPool as exc:  # one died while earlier batches were decoded
            raise DecoderLost() from exc
        return out

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        shutil.rmtree(self.spool, ignore_errors=True)


def _seen(chunk: asyncio.Future[Handoff]) -> None:
    """Mark a failed chunk's exception as seen. When a decoder dies, every chunk still in
    the pool fails with it, but the replay stops at the first one it awaits (`decoded`):
    the others would each print "Future exception was never retrieved" and a traceback
    under the one line that says what happened."""
    if not chunk.cancelled():
        chunk.exception()


async def decoded(
    task: ReadTask, chunk: asyncio.Future[Handoff], on_wait: Callable[[str], None]
) -> WireChunk:
    """A chunk's result (`spool.take`); while it takes long, say so every `WAIT_REPORT_S`
    (a decoder waits for Kafka as the reader of this process does, and as silently,
    otherwise)."""
    waited = 0.0
    while True:
        try:
            return take(await asyncio.wait_for(asyncio.shield(chunk), WAIT_REPORT_S))
        except BrokenProcessPool as exc:
            raise DecoderLost() from exc
        except TimeoutError:
            waited += WAIT_REPORT_S
            logical, _, partition, start, end = task
            on_wait(
                f"a decoding process has been reading {logical}/{partition} "
                f"[{start:,}, {end:,}) for {waited:.0f}s; waiting for it (is Kafka "
                "answering? a stopped run resumes from its checkpoints)"
            )
