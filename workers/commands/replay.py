"""`seatflow replay`: rebuild the read models from the topics into a shadow copy and swap.

See workers/replay/ and README "Operations > Replay". The command never moves the live
consumer group's offsets: it reads with manual assignment and no group, and commits only
for the new generation's group, once, at the handover.

Exit codes: 0 done (or dry run), 1 failed (rerun the same command to resume), 2 refused
(usage, or the stores are in a state the command cannot act on; the message says why),
3 Kafka unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import orjson
from aiokafka.errors import KafkaConnectionError

from workers.observability.log_throttle import throttle_logs
from workers.replay.plan import DEFAULT_BATCH_EVENTS, EARLIEST, PlanError
from workers.replay.progress import reporter_for
from workers.settings import load_settings

EXIT_OK, EXIT_FAILED, EXIT_REFUSED, EXIT_KAFKA = 0, 1, 2, 3


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="rebuild the read models from the topics into a shadow copy, then swap",
        description="Rebuild the read models from the source topics into a shadow copy "
        "(PostgreSQL schema <schema>_shadow, Redis prefix <prefix-without-colon>~shadow:) "
        "as the next projection generation, catch up with the live stream, fence the live "
        "generation's workers, and swap atomically: readers see the old complete copy or "
        "the new one. The replaced copy is kept as <schema>_old / <prefix>~old: until "
        "--drop-old. Live workers restart themselves on the new generation. Interrupted, "
        "the same command resumes from its checkpoints.",
        epilog="Times: earliest/latest, an ISO 8601 datetime (UTC if no offset), or a "
        "duration back from now (90s, 15m, 2h, 3d, 1h30m); a time means the first record "
        "whose Kafka timestamp is at or after it, per partition. Exit codes: 0 done, "
        "1 failed (rerun to resume), 2 refused, 3 Kafka unreachable.",
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument(
        "--drop-old", action="store_true", help="drop the copy the last swap replaced"
    )
    action.add_argument(
        "--abort",
        action="store_true",
        help="discard an unfinished replay: unfence the live generation, drop the shadow",
    )
    action.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan (topics, partitions, offset ranges, event counts) and stop",
    )
    parser.add_argument(
        "--from",
        dest="from_spec",
        default=EARLIEST,
        metavar="WHEN",
        help="first records to replay (default: earliest). Later than earliest, the new "
        "copy holds only what happened from then on (a partial rebuild)",
    )
    parser.add_argument(
        "--to",
        dest="to_spec",
        metavar="WHEN",
        help="stop before the first record at/after WHEN and keep the copy as a shadow "
        "(no catch-up, no swap). Default: the end offsets now, then catch up and swap",
    )
    parser.add_argument(
        "--models",
        choices=["all", "postgres", "redis"],
        default="all",
        help="stores to rebuild (default all). One store alone builds a shadow for "
        "`seatflow verify` and is never swapped: both stores are written from one seat "
        "table, so they change hands together",
    )
    parser.add_argument(
        "--no-swap",
        action="store_true",
        help="build the shadow up to the end offsets now and stop; the same command "
        "without --no-swap later resumes, catches up and swaps",
    )
    parser.add_argument(
        "--batch-events",
        type=int,
        default=DEFAULT_BATCH_EVENTS,
        metavar="N",
        help="source records per batch (default 250000; the last takes a remainder of up "
        "to N/4; larger batches cost less per event and more memory; a killed run "
        "processes its unfinished batches again)",
    )
    parser.add_argument(
        "--catch-up-threshold",
        type=int,
        metavar="N",
        help="fence the live generation when fewer than N events remain (default: half a "
        "batch, at most 10000); the live copy stays frozen until the swap",
    )
    parser.add_argument(
        "--decode-processes",
        type=int,
        metavar="N",
        help="processes that decode while this one projects (default: one per core, at "
        "most 4, for replays of 100,000 events or more; 0: none)",
    )
    parser.add_argument("--json", action="store_true", help="JSON lines (progress, summary)")
    parser.add_argument(
        "--progress-interval",
        type=float,
        default=5.0,
        metavar="S",
        help="seconds between progress lines when stdout is not a terminal (default 5)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from workers.replay.cleanup import abort, drop_old
    from workers.replay.decoders import DecoderLost
    from workers.replay.runner import Options, Replay, ReplayRefused
    from workers.replay.source import RecordsGone

    base = load_settings()
    reporter = reporter_for(json=args.json, interval_s=args.progress_interval)
    throttle_logs("aiokafka")  # Kafka unreachable: a line per kind and 30 s, not per attempt

    def stopped(message: str, code: int = EXIT_REFUSED) -> int:
        if args.json:
            print(orjson.dumps({"type": "error", "message": message}).decode(), flush=True)
        print(f"seatflow replay: {message}", file=sys.stderr)
        return code

    if args.batch_events < 1:
        return stopped("--batch-events must be >= 1")
    try:
        if args.drop_old or args.abort:
            doc = asyncio.run(drop_old(base) if args.drop_old else abort(base))
            reporter.summary(doc, [f"replay: {doc['message']}"])
            return EXIT_OK
        options = Options(
            from_spec=args.from_spec,
            to_spec=args.to_spec,
            models=args.models,
            swap=not args.no_swap,
            batch_events=args.batch_events,
            catch_up_threshold=args.catch_up_threshold,
            dry_run=args.dry_run,
            decode_processes=args.decode_processes,
        )
        summary = asyncio.run(Replay(base, options, reporter).run())
    except (ReplayRefused, PlanError, RecordsGone) as exc:
        return stopped(str(exc))
    except KafkaConnectionError as exc:
        print(f"seatflow replay: Kafka unreachable: {exc}", file=sys.stderr)
        return EXIT_KAFKA
    except DecoderLost as exc:
        return stopped(str(exc), EXIT_FAILED)
    reporter.summary(summary.doc(), summary.lines())
    return EXIT_OK
