"""Decoded chunks from worker processes to a busy parent: the pool's pipe vs. a file.

    .venv/bin/python bench/handoff.py [--chunks 40] [--facts 10000] [--repeat 3]

The replay's decoding processes return chunks of ~10,000 facts' JSON (~3 MB) to the
projecting process, which is busy with Python code most of the time. This times, in one
script and against the same pool of two spawned processes, `--chunks` such chunks handed
back (a) as the task's result, through the pool's pipe, and (b) through a file
(`workers.replay.spool`), each once with the parent idle and once with it running Python
code as the projecting process does (yielding to its event loop every 50 ms). Best of
`--repeat` rounds; the figure that matters is (a) busy against (b) busy.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from workers.replay.fold import WireChunk
from workers.replay.spool import Handoff, hand_off, make_spool, take


def make_chunk(facts: int) -> WireChunk:
    wire = (
        b'["r","reservation-created/3/123456/0","5f0c3b0e-8a1e-4c2b-9d0e-4e0d7b1a2c3d",'
        b'"0b7e1c52-36a1-4f4e-9b0a-1d2c3e4f5a6b","9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",'
        b'"customer-123456","C-12","GENERAL","75.50","2026-04-06T13:00:00.123456+00:00",'
        b'"2026-04-06T13:15:00.123456+00:00"]'
    )
    return facts, 0, [wire + b" " * (i % 7) for i in range(facts)]


def through_pipe(facts: int) -> Handoff:
    return make_chunk(facts)


def through_file(facts: int, spool: Path) -> Handoff:
    return hand_off(make_chunk(facts), spool)


def busy_for(seconds: float) -> None:
    end = time.perf_counter() + seconds
    total = 0
    while time.perf_counter() < end:
        for i in range(1000):
            total += i


async def one_round(
    pool: ProcessPoolExecutor, chunks: int, facts: int, spool: Path | None, busy: bool
) -> float:
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    if spool is None:
        futures = [loop.run_in_executor(pool, through_pipe, facts) for _ in range(chunks)]
    else:
        futures = [loop.run_in_executor(pool, through_file, facts, spool) for _ in range(chunks)]
    while busy and not all(f.done() for f in futures):
        busy_for(0.05)
        await asyncio.sleep(0)
    taken = [take(await f) for f in futures]
    assert sum(c[0] for c in taken) == chunks * facts
    return time.perf_counter() - started


async def main(args: argparse.Namespace) -> None:
    spool = make_spool()
    pool = ProcessPoolExecutor(2, mp_context=get_context("spawn"))
    try:
        await one_round(pool, 4, args.facts, spool, busy=False)  # start the processes
        best: dict[tuple[str, bool], float] = {}
        for _ in range(args.repeat):
            for way, where in (("pipe", None), ("file", spool)):
                for busy in (False, True):
                    seconds = await one_round(pool, args.chunks, args.facts, where, busy)
                    key = (way, busy)
                    best[key] = min(best.get(key, seconds), seconds)
        megabytes = args.chunks * len(make_chunk(args.facts)[2][0]) * args.facts / 1e6
        print(f"{args.chunks} chunks of {args.facts:,} facts (~{megabytes:,.0f} MB), "
              f"best of {args.repeat}, spool in {spool.parent}:")  # fmt: skip
        for (way, busy), seconds in best.items():
            parent = "busy" if busy else "idle"
            print(f"  {way}, parent {parent}: {seconds:.2f}s ({megabytes / seconds:,.0f} MB/s)")
        ratio = best["pipe", True] / best["file", True]
        print(f"busy parent: the file is {ratio:.1f}x faster than the pipe")
    finally:
        pool.shutdown()
        shutil.rmtree(spool, ignore_errors=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=40)
    parser.add_argument("--facts", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
