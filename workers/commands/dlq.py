"""`seatflow dlq`: inspect dead letters and send them back through the projections.

    seatflow dlq list                      counts by topic and reason, first/last failure
    seatflow dlq show --topic order-placed --reason schema --limit 5
    seatflow dlq redrive --topic reservation-created --since 2h --dry-run

The dead-letter topics are read with a consumer of no group (manual assignment, nothing
committed), from the beginning to the end offsets seen at start, so the commands never
disturb the workers nor each other. They are read as a stream: `list` holds counts per
reason, `show` the newest `--limit` letters, `redrive` `REDRIVE_CHUNK` letters at a time
(read, sent, acknowledged and reported before the next ones are read).

A redrive re-produces each selected dead letter's original key, value and headers to its
source topic (original partition and timestamp) with `seatflow.redrive.*` headers; the
workers then name its facts after the ORIGINAL record, which makes a second redrive
change nothing (see `workers.redrive`).

Exit codes: 0 done, 1 some selected dead letters were not sent (still rejected by the
current decoder, or refused by Kafka), 2 usage or configuration error, 3 Kafka unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, KafkaError

from workers.deadletter import STACK, StoredDeadLetter
from workers.dlq_query import BadTimeError, Newest, Selection, Summary, parse_when, position_key
from workers.kafka_clients import client_kwargs, quiet_aiokafka
from workers.kafka_reading import read_topics
from workers.redrive import Redrive, plan_redrive
from workers.settings import Settings, load_settings
from workers.topic_catalog import CatalogError, TopicCatalog, TopicRole, TopicSpec, load_catalog

EXIT_OK = 0
EXIT_NOT_ALL_SENT = 1
EXIT_USAGE = 2
EXIT_KAFKA = 3

FETCH_BYTES = 16 * 1024 * 1024
"""Per partition and fetch: dead letters may exceed 1 MB (the `.dlq` topics allow 8 MiB)."""
MAX_REQUEST_BYTES = 8 * 1024 * 1024
REDRIVE_CHUNK = 1000
"""Letters a redrive reads, sends and reports at a time (what it holds in memory)."""

_EPILOG = (
    "Topics are named by their source (reservation-created), their dead-letter topic "
    "(reservation-created.dlq) or its physical name; default: every dead-letter topic. "
    "--reason matches a case-insensitive substring of the reason or of the error class "
    "(e.g. schema_violation, undecodable, unknown_version, invalid_value). --since/--until "
    "take a duration back from now (30m, 2h, 7d) or an ISO 8601 time (no offset: UTC) and "
    "compare the time of failure. Exit codes: 0 done, 1 not every selected dead letter was "
    "sent, 2 usage or configuration error, 3 Kafka unreachable."
)


class UsageError(Exception):
    """A command-line mistake; the message says what to type instead."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dlq",
        help="inspect dead letters and redrive them after a fix",
        description="Inspect the dead-letter topics (records the workers could not decode) "
        "and send selected dead letters back through the projections once the decoder "
        "accepts them.",
        epilog=_EPILOG,
    )
    parser.set_defaults(func=lambda _args: _usage(parser))
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    listing = commands.add_parser(
        "list",
        help="count dead letters by topic and reason, with first and last failure times",
        description="Count the selected dead letters by dead-letter topic, error class and "
        "reason. Reasons are grouped by pattern (quoted values and numbers blanked) unless "
        "--exact.",
        epilog=_EPILOG,
    )
    _add_filters(listing)
    listing.add_argument("--exact", action="store_true", help="group by the exact reason")
    listing.add_argument("--json", action="store_true", help="one JSON object per group")
    listing.set_defaults(func=run_list)

    show = commands.add_parser(
        "show",
        help="print dead letters: seatflow's headers, the original headers, key and payload",
        description="Print the selected dead letters, oldest first: where and why each failed "
        "(the seatflow.dlq.* headers), the original headers and key, and the payload (pretty "
        "JSON when it parses, else escaped text or hex), truncated unless --full.",
        epilog=_EPILOG,
    )
    _add_filters(show)
    show.add_argument(
        "--offset", type=int, help="only the dead letter at this offset (needs one --topic)"
    )
    show.add_argument(
        "--limit", type=int, default=10, help="at most this many, the newest (default 10)"
    )
    show.add_argument("--full", action="store_true", help="do not truncate payloads")
    show.add_argument(
        "--max-bytes", type=int, default=2000,
        help="payload characters shown before truncating (default 2000)",
    )  # fmt: skip
    show.add_argument("--stack", action="store_true", help="also print the stack trace")
    show.add_argument("--json", action="store_true", help="one JSON object per dead letter")
    show.set_defaults(func=run_show)

    redrive = commands.add_parser(
        "redrive",
        help="send selected dead letters back to their source topics (after a fix)",
        description="Decode each selected dead letter with this version's decoder and send "
        "those that decode now to their source topic, as the producer sent them (key, value, "
        "headers, partition, timestamp) plus seatflow.redrive.* headers. The workers name "
        "the facts of a redriven record after the original record, so redriving the same "
        "dead letters again changes nothing. Those still rejected are listed with their "
        "reason and not sent (unless --force).",
        epilog=_EPILOG,
    )
    _add_filters(redrive)
    redrive.add_argument(
        "--dry-run", action="store_true", help="show what would be sent; send nothing"
    )
    redrive.add_argument(
        "--force", action="store_true",
        help="also send dead letters the current decoder still rejects (they will be "
        "dead-lettered again, keeping their original position)",
    )  # fmt: skip
    redrive.set_defaults(func=run_redrive)


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--topic", action="append", metavar="TOPIC",
        help="a source or dead-letter topic (repeatable; default: all dead-letter topics)",
    )  # fmt: skip
    parser.add_argument("--reason", metavar="TEXT", help="substring of the reason or error class")
    parser.add_argument("--since", metavar="WHEN", help="failed at or after (30m, 2h, ISO time)")
    parser.add_argument("--until", metavar="WHEN", help="failed before (30m, 2h, ISO time)")


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


# ---------------------------------------------------------------- commands


def run_list(args: argparse.Namespace) -> int:
    return _run(args, _list)


def run_show(args: argparse.Namespace) -> int:
    return _run(args, _show)


def run_redrive(args: argparse.Namespace) -> int:
    return _run(args, _redrive)


def _run(args: argparse.Namespace, command: Any) -> int:
    """Load settings and catalog, select, run; turn every failure into a line and a code."""
    settings = load_settings()
    try:
        catalog = load_catalog(settings)
        topics = dlq_topics(catalog, args.topic)
        selection = _selection(args, topics)
    except (CatalogError, UsageError) as e:
        _error(str(e))
        return EXIT_USAGE
    try:
        with quiet_aiokafka():
            code: int = asyncio.run(command(args, settings, catalog, selection))
            return code
    except KafkaConnectionError:
        _error(
            f"cannot connect to Kafka at {settings.kafka_bootstrap} "
            "(SEATFLOW_KAFKA_BOOTSTRAP); is it running? (scripts/services up)"
        )
        return EXIT_KAFKA
    except (KafkaError, TimeoutError) as e:
        _error(f"Kafka at {settings.kafka_bootstrap} failed a request: {e or type(e).__name__}")
        return EXIT_KAFKA
    except UsageError as e:
        _error(str(e))
        return EXIT_USAGE


def dlq_topics(catalog: TopicCatalog, names: Sequence[str] | None) -> list[TopicSpec]:
    """The dead-letter topics `names` designate (all of them when None)."""
    dead_letters = list(catalog.by_role(TopicRole.DEAD_LETTER))
    if not names:
        return dead_letters
    by_name: dict[str, TopicSpec] = {}
    for spec in dead_letters:
        by_name[spec.logical] = by_name[spec.name] = spec
    for spec in catalog:
        if spec.dead_letter is not None:
            by_name[spec.logical] = by_name[spec.name] = catalog.get(spec.dead_letter)
    chosen: list[TopicSpec] = []
    for name in names:
        spec = by_name.get(name)
        if spec is None:
            known = ", ".join(s.logical for s in catalog if s.dead_letter is not None)
            raise UsageError(f"--topic {name!r}: not a source or dead-letter topic ({known})")
        if spec not in chosen:
            chosen.append(spec)
    return chosen


def _selection(args: argparse.Namespace, topics: Sequence[TopicSpec]) -> Selection:
    now = datetime.now(UTC)
    try:
        since = parse_when(args.since, now) if args.since else None
        until = parse_when(args.until, now) if args.until else None
    except BadTimeError as e:
        raise UsageError(str(e)) from None
    return Selection(frozenset(s.name for s in topics), args.reason or None, since, until)


async def _list(
    args: argparse.Namespace, settings: Settings, catalog: TopicCatalog, selection: Selection
) -> int:
    summary = Summary(exact=args.exact)
    async for letter in iter_dead_letters(settings, selection):
        summary.add(letter)
    groups = summary.groups()
    out = sys.stdout
    if args.json:
        for g in groups:
            row = {
                "topic": g.topic, "error_class": g.error_class, "reason": g.reason,
                "count": g.count, "first_failure": _iso(g.first), "last_failure": _iso(g.last),
            }  # fmt: skip
            print(json.dumps(row, ensure_ascii=False), file=out)
        return EXIT_OK
    if not groups:
        print("no dead letters match", file=out)
        return EXIT_OK
    header = ("TOPIC", "COUNT", "FIRST FAILURE", "LAST FAILURE", "ERROR")
    rows = [
        (g.topic, str(g.count), _iso(g.first), _iso(g.last), g.error_class, safe(g.reason))
        for g in groups
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + "  REASON",
          file=out)  # fmt: skip
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=False)]
        cells[1] = row[1].rjust(widths[1])
        print("  ".join(cells) + "  " + row[-1], file=out)
    first = min(g.first for g in groups if g.first)
    last = max(g.last for g in groups if g.last)
    total = sum(g.count for g in groups)
    topics = len({g.topic for g in groups})
    print(f"{total} dead letter(s) in {topics} topic(s), failed {_iso(first)} .. {_iso(last)}",
          file=out)  # fmt: skip
    return EXIT_OK


async def _show(
    args: argparse.Namespace, settings: Settings, catalog: TopicCatalog, selection: Selection
) -> int:
    if args.offset is not None and (selection.topics is None or len(selection.topics) != 1):
        raise UsageError("--offset needs exactly one --topic")
    if args.limit > 0:
        newest = Newest(args.limit)
        keep: Callable[[StoredDeadLetter], None] = newest.add
    else:
        everything: list[StoredDeadLetter] = []
        keep = everything.append
    wanted = args.offset
    async for letter in iter_dead_letters(settings, selection):
        if wanted is None or letter.dlq_offset == wanted:
            keep(letter)
    letters = newest.letters() if args.limit > 0 else sorted(everything, key=position_key)
    if not letters:
        print("no dead letters match")
        return EXIT_OK
    limit = None if args.full else max(0, args.max_bytes)
    for letter in letters:
        if args.json:
            print(json.dumps(letter_as_json(letter, stack=args.stack), ensure_ascii=False))
        else:
            render_letter(letter, sys.stdout, limit=limit, stack=args.stack)
    return EXIT_OK


async def _redrive(
    args: argparse.Namespace, settings: Settings, catalog: TopicCatalog, selection: Selection
) -> int:
    """Read, plan, send and report `REDRIVE_CHUNK` letters at a time, in (topic, partition,
    offset) order: memory stays bounded however many letters are selected. The end offsets
    are fixed before anything is sent, so a redriven record that the workers dead-letter
    again is not picked up by this same run."""
    run_id = uuid.uuid4().hex
    sources = {spec.dead_letter: spec for spec in catalog if spec.dead_letter is not None}
    by_name = {spec.name: spec for spec in catalog}
    tally = _Tally(dry_run=args.dry_run, force=args.force)
    producer = None if args.dry_run else await start_redrive_producer(settings)
    finished = False
    try:
        plans: list[Redrive] = []
        # aclosing: the reader's consumer stops here, also when a send fails mid-way
        letters = iter_dead_letters(settings, selection, in_position_order=True)
        async with aclosing(letters):
            async for letter in letters:
                source = sources[by_name[letter.dlq_topic].logical]
                plans.append(
                    plan_redrive(
                        letter, logical_topic=source.logical, topic=source.name,
                        partitions=source.partitions, run_id=run_id,
                    )
                )  # fmt: skip
                if len(plans) >= REDRIVE_CHUNK:
                    await tally.redrive(producer, plans)
                    plans = []
        await tally.redrive(producer, plans)
        finished = True
    finally:
        if not finished:  # the error itself is reported by the caller, after this
            print(tally.summary(run_id, stopped=True), flush=True)
        if producer is not None:
            await producer.stop()
    print(tally.summary(run_id))
    return EXIT_OK if not tally.rejected and not tally.refused else EXIT_NOT_ALL_SENT


class _Tally:
    """What a redrive did so far, and one line per letter as each chunk is done."""

    def __init__(self, *, dry_run: bool, force: bool) -> None:
        self.dry_run, self.force = dry_run, force
        self.selected = self.sent = self.rejected = self.refused = 0
        self.verb = "would send" if dry_run else "sent"

    async def redrive(self, producer: AIOKafkaProducer | None, plans: Sequence[Redrive]) -> None:
        to_send = [p for p in plans if p.rejection is None or self.force]
        failures: dict[int, str] = {}
        if to_send and producer is not None:
            errors = await send_redrives(producer, to_send)
            failures = {id(p): e for p, e in zip(to_send, errors, strict=True) if e is not None}
        self.selected += len(plans)
        for plan in plans:
            partition = "?" if plan.partition is None else str(plan.partition)
            where = f"{plan.letter.position} -> {plan.topic}/{partition}"
            origin = plan.origin.format() if plan.origin else "unknown"
            if plan.rejection is not None and not self.force:
                self.rejected += 1
                print(f"{where}  skipped, still rejected: {safe(plan.rejection)}")
                continue
            error = failures.get(id(plan))
            if error is not None:
                self.refused += 1
                print(f"{where}  FAILED: {safe(error)}")
                continue
            self.sent += 1
            note = f" (still rejected: {safe(plan.rejection)})" if plan.rejection else ""
            print(f"{where}  {self.verb} (origin {origin}){note}")
        sys.stdout.flush()  # progress: each chunk's lines as soon as it is done

    def summary(self, run_id: str, *, stopped: bool = False) -> str:
        """The closing line; `stopped`: the run failed after the letters counted so far."""
        prefix = "stopped after " if stopped else ""
        text = f"{prefix}{self.selected} selected: {self.sent} {self.verb}"
        if self.rejected:
            text += f", {self.rejected} still rejected by this decoder (--force sends them anyway)"
        if self.refused:
            text += f", {self.refused} refused by Kafka"
        if self.dry_run:
            text += " (dry run, nothing sent)"
        elif self.sent:
            text += f"; redrive id {run_id}"
        if stopped and self.dry_run:
            text += "; run it again for the rest"
        elif stopped:
            text += (
                "; letters of the chunk being sent when it stopped may have gone too; run "
                "the same command again to send the rest (a letter sent twice is applied once)"
            )
        return text


# ---------------------------------------------------------------- Kafka


async def read_dead_letters(settings: Settings, selection: Selection) -> list[StoredDeadLetter]:
    """The selected dead letters, in (topic, partition, offset) order."""
    return [
        letter async for letter in iter_dead_letters(settings, selection, in_position_order=True)
    ]


async def iter_dead_letters(
    settings: Settings, selection: Selection, *, in_position_order: bool = False
) -> AsyncIterator[StoredDeadLetter]:
    """Every dead letter of the selected topics that `selection` matches, from the log
    start (retention may have removed the first records) up to the end offsets seen at
    start, in offset order per partition.

    `in_position_order`: partition after partition, i.e. in (topic, partition, offset)
    order (what `redrive` sends and prints); otherwise all partitions are fetched at
    once, interleaved (faster for `list` and `show`, which do not care). Nothing is kept
    here: what a command holds is up to it (counts for `list`, the newest N for `show`,
    a chunk for `redrive`). A dead-letter topic that does not exist yet (no worker has
    started) holds nothing.
    """
    tps = await _partitions(settings, sorted(selection.topics or ()))
    if not tps:
        return
    runs = read_topics(
        settings, tps, partition_fetch_bytes=FETCH_BYTES, max_records=5000,
        one_partition_at_a_time=in_position_order,
    )  # fmt: skip
    async with aclosing(runs):
        async for tp, messages in runs:
            for m in messages:
                letter = StoredDeadLetter.parse(
                    tp.topic, tp.partition, m.offset, m.timestamp, m.key, m.value,
                    list(m.headers or ()),
                )  # fmt: skip
                if selection.matches(letter):
                    yield letter


async def _partitions(settings: Settings, topics: Sequence[str]) -> list[TopicPartition]:
    """The partitions of those of `topics` that exist."""
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [t for t in topics if t in existing]
        described = await admin.describe_topics(wanted) if wanted else []
    finally:
        await admin.close()
    return sorted(
        TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]
    )


async def start_redrive_producer(settings: Settings) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(
        **client_kwargs(settings), acks="all", enable_idempotence=True,
        max_request_size=MAX_REQUEST_BYTES, linger_ms=5,
    )  # fmt: skip
    await producer.start()
    return producer


async def send_redrives(producer: AIOKafkaProducer, plans: Sequence[Redrive]) -> list[str | None]:
    """Produce every plan, in order; return per plan None (acked by Kafka) or the error.

    A record Kafka refuses (e.g. too large for the source topic) is reported and the others
    are still sent; losing the connection aborts the whole run (rerunning it is harmless:
    a letter sent twice is applied once, see `workers.redrive`).
    """
    failures: list[str | None] = [None] * len(plans)
    pending = []
    for index, plan in enumerate(plans):
        if plan.letter.key is None and plan.letter.value is None:
            failures[index] = "aiokafka cannot produce a record with neither key nor value"
            continue
        try:
            future = await producer.send(
                plan.topic, plan.letter.value, key=plan.letter.key,
                partition=plan.partition, timestamp_ms=plan.timestamp_ms,
                headers=list(plan.headers),
            )  # fmt: skip
        except KafkaError as e:
            if isinstance(e, KafkaConnectionError):
                raise
            failures[index] = f"{type(e).__name__}: {e}"
            continue
        pending.append((index, future))
    for index, future in pending:
        try:
            await future
        except KafkaError as e:
            failures[index] = f"{type(e).__name__}: {e}"
    return failures


# ---------------------------------------------------------------- rendering


def safe(text: str) -> str:
    """`text` with every non-printable character escaped: a payload must not be able to
    move the cursor, recolour or rewrite the operator's terminal (ESC, CSI, CR, BIDI...)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _escape(char: str) -> str:
    code = ord(char)
    if char == "\n":
        return "\\n"
    if char == "\r":
        return "\\r"
    if char == "\t":
        return "\\t"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def render_bytes(data: bytes | None, limit: int | None) -> tuple[str, str]:
    """(a description, the text to show) of a key or payload."""
    if data is None:
        return "null", ""
    if not data:
        return "empty (0 bytes)", ""
    try:
        pretty = orjson.dumps(orjson.loads(data), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        try:
            shown, kind = safe(data.decode("utf-8")), "text, not JSON"
        except UnicodeDecodeError as e:
            head = data if limit is None else data[: limit // 3 + 1]
            shown, kind = head.hex(" ", 1), f"binary (invalid UTF-8 at byte {e.start}), hex"
    else:  # escape within lines: the line breaks are the indentation's, the payload's are \n
        shown, kind = "\n".join(safe(line) for line in pretty.split("\n")), "JSON"
    if limit is not None and len(shown) > limit:
        shown = shown[:limit] + "\n... truncated (--full shows all of it)"
    return f"{len(data)} bytes, {kind}", shown


def render_key(key: bytes | None) -> str:
    """A key on one line: escaped text if it is UTF-8, else hex."""
    if key is None:
        return "null"
    try:
        text = safe(key.decode("utf-8"))
    except UnicodeDecodeError:
        text = "hex " + key[:100].hex(" ", 1)
    return f"{len(key)} bytes: {text[:200]}{'...' if len(text) > 200 else ''}"


def render_letter(letter: StoredDeadLetter, out: TextIO, *, limit: int | None, stack: bool) -> None:
    ours = letter.ours
    print(f"== {letter.position}", file=out)
    for name, value in ours.items():
        if name == STACK:
            continue
        print(f"  {name:<18} {safe(value)}", file=out)
    if not ours:
        print("  (no seatflow.dlq.* headers: not written by a seatflow worker)", file=out)
    print(f"  key                {render_key(letter.key)}", file=out)
    if letter.original_headers:
        print("  original headers", file=out)
        for name, value in letter.original_headers:
            print(f"    {safe(name)}: {safe(repr(value))}", file=out)
    else:
        print("  original headers   none", file=out)
    value_kind, value_text = render_bytes(letter.value, limit)
    print(f"  value              {value_kind}", file=out)
    for line in value_text.splitlines():
        print(f"    {line}", file=out)
    if stack and STACK in ours:
        print("  stack", file=out)
        for line in ours[STACK].splitlines():
            print(f"    {safe(line)}", file=out)
    print(file=out)


def letter_as_json(letter: StoredDeadLetter, *, stack: bool) -> dict[str, Any]:
    ours = {k: v for k, v in letter.ours.items() if stack or k != STACK}
    return {
        "position": letter.position,
        "seatflow": ours,
        "key": _bytes_json(letter.key),
        "headers": [[k, _bytes_json(v)] for k, v in letter.original_headers],
        "value": _bytes_json(letter.value),
    }


def _bytes_json(data: bytes | None) -> str | dict[str, str] | None:
    """UTF-8 text as a string; anything else as {"hex": ...}."""
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {"hex": data.hex()}


def _iso(when: datetime | None) -> str:
    return when.isoformat(timespec="seconds") if when else "-"


def _error(message: str) -> None:
    print(f"seatflow dlq: error: {message}", file=sys.stderr)
