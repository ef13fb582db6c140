"""A replay decoding process's work with glibc's default heap trimming and with
`workers.heap.keep_freed_heap`, each in a fresh process, alternately.

    .venv/bin/python bench/heap.py [--reservations 50000] [--rounds 3]

The work is what a decoding process of `seatflow replay` does: unpickle a chunk of 10,000
records, `decode_chunk_wire` it (decode, cut into facts, encode each fact as JSON), pickle
the result, drop it, next chunk. Records come from the load generator's scenario. Printed:
per record, wall time, user and system CPU time and page faults (the last two passes of
each process: the first warms up), and the ratio of the tuned process to the default one.
"""

from __future__ import annotations

import argparse
import json
import pickle
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CHUNK = 10_000


def work(reservations: int, tuned: bool) -> dict[str, float]:
    from workers.heap import keep_freed_heap
    from workers.loadgen.scenario import ScenarioShape, scenario
    from workers.replay.fold import decode_chunk_wire

    if tuned and not keep_freed_heap():
        raise SystemExit("no glibc mallopt here: nothing to compare")
    shape = ScenarioShape(
        concert_events=max(1, reservations * 6 // 7000), reservations=reservations
    )
    records = [
        (r.topic, r.topic, r.partition(4), i, 1_700_000_000_000 + i, r.key, r.value, ())
        for i, r in enumerate(scenario(3, shape))
    ]
    chunks = [pickle.dumps(records[i : i + CHUNK]) for i in range(0, len(records), CHUNK)]
    passes = []
    for _ in range(3):
        before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        for chunk in chunks:
            result = pickle.dumps(decode_chunk_wire(pickle.loads(chunk)))
            del result
        after, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - started
        n = len(records)
        passes.append(
            {
                "wall_us": wall / n * 1e6,
                "user_us": (after.ru_utime - before.ru_utime) / n * 1e6,
                "sys_us": (after.ru_stime - before.ru_stime) / n * 1e6,
                "faults": (after.ru_minflt - before.ru_minflt) / n,
            }
        )
    warm = passes[1:]
    return {k: sum(p[k] for p in warm) / len(warm) for k in warm[0]} | {"records": n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reservations", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3, help="processes of each kind")
    parser.add_argument("--child", choices=("default", "tuned"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(work(args.reservations, args.child == "tuned")))
        return
    results: dict[str, list[dict[str, float]]] = {"default": [], "tuned": []}
    for _ in range(args.rounds):
        for kind in results:
            command = [sys.executable, __file__, "--child", kind]
            command += ["--reservations", str(args.reservations)]
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            results[kind].append(json.loads(out.strip().splitlines()[-1]))
    n = int(results["default"][0]["records"])
    print(f"{n:,} records in chunks of {CHUNK:,}; per record, mean of {args.rounds} processes each")
    print(f"{'heap':8} {'wall us':>8} {'user us':>8} {'sys us':>8} {'faults':>7}")
    mean = {}
    for kind, runs in results.items():
        mean[kind] = {k: sum(r[k] for r in runs) / len(runs) for k in runs[0]}
        m = mean[kind]
        figures = (m["wall_us"], m["user_us"], m["sys_us"])
        print(f"{kind:8} " + " ".join(f"{x:8.2f}" for x in figures) + f" {m['faults']:7.2f}")
    cpu = {k: m["user_us"] + m["sys_us"] for k, m in mean.items()}
    print(
        f"tuned / default: wall {mean['tuned']['wall_us'] / mean['default']['wall_us']:.3f}, "
        f"CPU {cpu['tuned'] / cpu['default']:.3f}"
    )


if __name__ == "__main__":
    main()
