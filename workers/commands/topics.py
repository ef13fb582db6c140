"""`seatflow topics`: create the catalog's topics and show where the broker differs.

Exit codes are part of the interface, so CI and operators can act on them:
0 everything is as declared (or was just created), 1 drift or a failed change remains,
2 usage or configuration error, 3 Kafka unreachable or refusing our requests.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any, TextIO

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, KafkaError
from pydantic import ValidationError

from workers import topic_admin
from workers.kafka_clients import KafkaAccessError, check_access, client_kwargs, quiet_aiokafka
from workers.settings import Settings, load_settings
from workers.topic_admin import ApplyReport, Drift, DriftKind, Outcome, TopicResult
from workers.topic_catalog import CatalogError, TopicCatalog, load_catalog

EXIT_OK = 0
EXIT_DRIFT = 1
EXIT_USAGE = 2
EXIT_KAFKA = 3

_GROW_HELP = (
    "add partitions to topics that have fewer than declared. Dangerous for keyed topics: "
    "keys move to other partitions, so per-key ordering breaks across the change and "
    "partition-local state (Faust tables, their changelogs) no longer matches the data; "
    "stop the workers and rebuild the read models afterwards. Never removes partitions."
)
_APPLY_EPILOG = (
    "Never deletes a topic and never removes partitions. Without --grow / --fix-config, "
    "existing topics are only compared and differences are reported as DRIFT. With "
    "--dry-run the exit code is the one apply would return. Exit codes: 0 as declared "
    "(or created), 1 drift or a failed change remains, 2 usage or catalog error, 3 Kafka "
    "unreachable. Names are SEATFLOW_TOPIC_PREFIX + catalog name ({group} = "
    "SEATFLOW_CONSUMER_GROUP); the broker is SEATFLOW_KAFKA_BOOTSTRAP; the catalog is "
    "topics/catalog.toml or $SEATFLOW_TOPICS_DIR/catalog.toml."
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "topics",
        help="create and check the Kafka topics of topics/catalog.toml",
        description="Manage the Kafka topics declared in the topic catalog.",
    )
    parser.set_defaults(func=lambda _args: _usage(parser))
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    apply = commands.add_parser(
        "apply",
        help="create missing topics; report (optionally fix) drift of existing ones",
        description="Create the catalog's missing topics with their partitions and config, "
        "and compare existing topics with the catalog.",
        epilog=_APPLY_EPILOG,
    )
    apply.add_argument(
        "--dry-run", action="store_true", help="only show what would be done; change nothing"
    )
    apply.add_argument("--grow", action="store_true", help=_GROW_HELP)
    apply.add_argument(
        "--fix-config",
        action="store_true",
        help="set config values that differ from the catalog (other overrides are kept)",
    )
    apply.set_defaults(func=run_apply)

    listing = commands.add_parser(
        "list",
        help="print the catalog with resolved topic names (does not contact Kafka)",
        description="Print every catalog topic as it resolves for the current settings.",
    )
    listing.set_defaults(func=run_list)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def run_list(_args: argparse.Namespace) -> int:
    loaded = _load()
    if isinstance(loaded, int):
        return loaded
    _settings, catalog = loaded
    rows = [
        (
            spec.name,
            spec.role.value,
            str(spec.partitions),
            "default" if spec.replication_factor is None else str(spec.replication_factor),
            " ".join(f"{k}={v}" for k, v in spec.config.items()),
            spec.description,
        )
        for spec in catalog
    ]
    header = ("TOPIC", "ROLE", "PARTITIONS", "REPLICATION", "CONFIG", "DESCRIPTION")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]))
    return EXIT_OK


def run_apply(args: argparse.Namespace) -> int:
    loaded = _load()
    if isinstance(loaded, int):
        return loaded
    settings, catalog = loaded
    try:
        with quiet_aiokafka():
            report = asyncio.run(
                _apply(
                    settings,
                    catalog,
                    dry_run=args.dry_run,
                    grow=args.grow,
                    fix_config=args.fix_config,
                )
            )
    except KafkaAccessError as e:
        _error(str(e))
        return EXIT_KAFKA
    except KafkaConnectionError:
        _error(
            f"cannot connect to Kafka at {settings.kafka_bootstrap} "
            "(SEATFLOW_KAFKA_BOOTSTRAP); is it running? (scripts/services up)"
        )
        return EXIT_KAFKA
    except (KafkaError, TimeoutError) as e:
        _error(f"Kafka at {settings.kafka_bootstrap} failed a request: {e or type(e).__name__}")
        return EXIT_KAFKA
    render(report, dry_run=args.dry_run, grow=args.grow, fix_config=args.fix_config)
    return EXIT_OK if report.as_declared else EXIT_DRIFT


async def _apply(
    settings: Settings, catalog: TopicCatalog, *, dry_run: bool, grow: bool, fix_config: bool
) -> ApplyReport:
    await check_access(settings)  # a refused password or certificate, said plainly
    admin = AIOKafkaAdminClient(**client_kwargs(settings), client_id="seatflow-topics")
    try:
        await admin.start()
        if dry_run:
            current = await topic_admin.plan(catalog, admin)
            return topic_admin.predict(current, grow=grow, fix_config=fix_config)
        return await topic_admin.apply(catalog, admin, grow=grow, fix_config=fix_config)
    finally:
        await admin.close()


def render(
    report: ApplyReport,
    *,
    dry_run: bool,
    grow: bool,
    fix_config: bool,
    out: TextIO | None = None,
) -> None:
    """One line per topic, then a summary; the wording is what operators grep for."""
    out = out or sys.stdout
    width = max((len(r.action.spec.name) for r in report.results), default=0)
    counts: dict[str, int] = {}
    for result in report.results:
        status = _status(result, dry_run=dry_run, grow=grow, fix_config=fix_config)
        bucket = _bucket(result, dry_run)
        counts[bucket] = counts.get(bucket, 0) + 1
        print(f"{result.action.spec.name.ljust(width)}  {status}", file=out)
    order = ("would create", "created", "ok", "would fix", "fixed", "drift", "failed")
    summary = ", ".join(f"{counts[k]} {k}" for k in order if counts.get(k))
    if dry_run:
        tail = "dry run, nothing changed"
    elif counts.get("failed"):
        tail = "some changes failed"
    else:
        tail = "all as declared" if report.as_declared else "drift remains"
    print(f"{len(report.results)} topics: {summary} ({tail})", file=out)


def _bucket(result: TopicResult, dry_run: bool) -> str:
    if dry_run and result.outcome in (Outcome.CREATED, Outcome.FIXED):
        return "would create" if result.outcome is Outcome.CREATED else "would fix"
    return result.outcome.value


def _status(result: TopicResult, *, dry_run: bool, grow: bool, fix_config: bool) -> str:
    outcome = result.outcome
    if outcome is Outcome.CREATED:
        return "would create" if dry_run else "created"
    if outcome is Outcome.OK:
        return "ok"
    fixed = "; ".join(_describe_fix(d) for d in result.fixed)
    remaining = "; ".join(
        _describe_drift(d, grow=grow, fix_config=fix_config) for d in result.remaining
    )
    if outcome is Outcome.FIXED:
        return ("would fix: " if dry_run else "fixed: ") + fixed
    parts = [f"DRIFT: {remaining}"] if remaining else []
    if result.fixed:
        parts.append(("would fix: " if dry_run else "fixed: ") + fixed)
    if outcome is Outcome.FAILED:
        parts.insert(0, f"FAILED: {result.error}")
    return "; ".join(parts)


def _describe_fix(drift: Drift) -> str:
    return f"{drift.key} {drift.actual} -> {drift.declared}"


def _describe_drift(drift: Drift, *, grow: bool, fix_config: bool) -> str:
    text = f"{drift.key} {drift.actual}, catalog {drift.declared}"
    if drift.kind is DriftKind.MORE_PARTITIONS:
        return f"{text} (partitions cannot be removed)"
    if drift.kind is DriftKind.FEWER_PARTITIONS and not grow:
        return f"{text} (--grow adds them; see --help first)"
    if drift.kind is DriftKind.CONFIG and not fix_config:
        return f"{text} (--fix-config sets it)"
    return text


def _load() -> tuple[Settings, TopicCatalog] | int:
    """Settings and catalog, or the exit code after printing why they are unusable."""
    try:
        settings = load_settings()
    except ValidationError as e:
        _error(f"invalid settings: {e}")
        return EXIT_USAGE
    try:
        return settings, load_catalog(settings)
    except CatalogError as e:
        _error(str(e))
        return EXIT_USAGE


def _error(message: str) -> None:
    print(f"seatflow topics: error: {message}", file=sys.stderr)
