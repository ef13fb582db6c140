"""`seatflow lag`: the consumer group's lag per partition, in messages and in seconds.

Measured from Kafka alone (committed offsets, end offsets, the timestamp of the oldest
uncommitted record), so it answers while no worker runs, which is when lag matters most.
`--serve` keeps measuring and serves the same metrics the worker exports
(`seatflow_consumer_lag_*`) on /metrics: a standalone lag exporter that keeps reporting
through a total outage of the workers.

Exit codes: 0 measured, 3 Kafka unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from typing import Any

from workers.observability.lag import Measurement, measure
from workers.settings import Settings, load_settings
from workers.topic_catalog import load_catalog

EXIT_OK = 0
EXIT_KAFKA = 3


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "lag",
        help="consumer lag per partition, in messages and seconds (also as an exporter)",
        description="Measure the consumer group's lag on every pipeline topic (the source "
        "topics and seat-facts): messages not yet committed, and the age in seconds of the "
        "oldest of them (from its Kafka record timestamp); 0 when caught up. The group is "
        "SEATFLOW_CONSUMER_GROUP.",
        epilog="Exit codes: 0 measured, 3 Kafka unreachable. With --serve: runs until "
        "SIGTERM/Ctrl-C, serving /metrics and /healthz on SEATFLOW_METRICS_HOST:PORT "
        "(or --port), measuring every SEATFLOW_LAG_INTERVAL_S seconds.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--serve", action="store_true", help="keep measuring and serve the lag on /metrics"
    )
    parser.add_argument("--port", type=int, help="port for --serve (default SEATFLOW_METRICS_PORT)")
    parser.set_defaults(func=run)


def as_json(m: Measurement) -> dict[str, Any]:
    return {
        "group": m.group,
        "measured_at": m.measured_at,
        "total_messages": m.total(),
        "staleness_seconds": m.staleness,
        "partitions": [
            {
                "topic": p.topic,
                "physical_topic": p.physical,
                "partition": p.partition,
                "committed": p.committed,
                "end": p.end,
                "messages": p.messages,
                "seconds": p.seconds,
            }
            for p in m.partitions
        ],
    }


def as_table(m: Measurement) -> str:
    rows = [("topic", "partition", "committed", "end", "lag", "lag_seconds")]
    for p in m.partitions:
        seconds = "?" if p.seconds is None else f"{p.seconds:.1f}"
        rows.append(
            (p.topic, str(p.partition), str(p.committed), str(p.end), str(p.messages), seconds)
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    stale = "?" if m.staleness is None else f"{m.staleness:.1f}s"
    lines.append(f"group {m.group}: {m.total()} messages behind; staleness {stale}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    if args.serve:
        return asyncio.run(serve(settings, args.port))
    try:
        measurement = asyncio.run(measure(settings))
    except Exception as exc:  # aiokafka's connection errors have no common base worth naming
        print(f"seatflow lag: cannot measure ({type(exc).__name__}: {exc})", file=sys.stderr)
        return EXIT_KAFKA
    print(json.dumps(as_json(measurement)) if args.json else as_table(measurement))
    return EXIT_OK


async def serve(settings: Settings, port: int | None) -> int:
    from workers.observability.lag import LagMeter, measure_forever
    from workers.observability.metrics import LagExporter
    from workers.observability.server import serve as serve_http

    logging.basicConfig(level="INFO", format="[%(asctime)s] %(levelname)s %(name)s: %(message)s")
    exporter = LagExporter(settings.consumer_group)
    meter = LagMeter.for_settings(settings, load_catalog(settings))
    runner = await serve_http(
        settings.metrics_host, settings.metrics_port if port is None else port, exporter.registry
    )
    if runner is None:
        print("seatflow lag: no port to serve on", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(
        measure_forever(meter, settings.lag_interval_s, exporter.lag_measured, exporter.lag_failed)
    )
    try:
        await stop.wait()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await meter.close()
        await runner.cleanup()
    return EXIT_OK
