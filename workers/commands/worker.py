"""`seatflow worker`: the consumer process that keeps the read models up to date.

Before Faust starts: the read-model schema is migrated, and the topics are checked. The
source topics belong to upstream: a missing one stops the worker with a message (a typo in
SEATFLOW_TOPIC_PREFIX must not silently consume nothing); seatflow's own topics (dead
letters, seat-facts, the table changelog) are created when missing.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from workers.db.migrate import migrate
from workers.gc_policy import tune_for_streaming
from workers.generation import install_watch, live_generation, pipeline_for
from workers.kafka_clients import KafkaAccessError, check_access, client_kwargs
from workers.observability.log_throttle import throttle_logs
from workers.retry import retry_until_done
from workers.settings import Settings, load_settings
from workers.topic_admin import ActionKind, apply, plan
from workers.topic_catalog import TopicCatalog, TopicRole

log = logging.getLogger("seatflow.worker")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="run the consumer process (projects the topics into Redis and PostgreSQL)",
        description="Run the seatflow consumer process: consume the source topics, project "
        "them into the read models in Redis and PostgreSQL, effectively once. Migrates the "
        "read-model schema and creates seatflow's own topics first. Stop with SIGTERM or "
        "Ctrl-C. Settings come from SEATFLOW_* environment variables (see README.md).",
    )
    parser.add_argument(
        "--loglevel", default="info", choices=["debug", "info", "warning", "error"],
        help="log level (default: info)",
    )  # fmt: skip
    parser.set_defaults(func=run)


class StartupError(Exception):
    pass


async def prepare(settings: Settings, catalog: TopicCatalog) -> None:
    """Migrate the schema and make sure every topic exists; waits for services that are down."""
    dsn = settings.postgres_dsn.get_secret_value()
    applied = await retry_until_done(
        lambda: migrate(dsn, settings.pg_schema), what="postgres migrate", log=log
    )
    for name in applied:
        log.info("applied migration %s to schema %s", name, settings.pg_schema)

    async def ensure_topics() -> None:
        try:
            await check_access(settings)
        except KafkaAccessError as e:  # a refused secret is no outage: stop, do not retry
            raise StartupError(str(e)) from None
        admin = AIOKafkaAdminClient(**client_kwargs(settings))
        await admin.start()
        try:
            current = await plan(catalog, admin)
            missing = [
                a.spec.name for a in current.of_kind(ActionKind.CREATE)
                if a.spec.role is TopicRole.SOURCE
            ]  # fmt: skip
            if missing:
                raise StartupError(
                    f"source topic(s) missing: {', '.join(missing)} (check "
                    "SEATFLOW_TOPIC_PREFIX, or create them with `seatflow topics apply`)"
                )
            report = await apply(catalog, admin)
            for result in report.results:
                if result.remaining:
                    log.warning("topic %s differs from topics/catalog.toml: %s",
                                result.action.spec.name, result.remaining)  # fmt: skip
        finally:
            await admin.close()

    async def ensure_topics_or_stop() -> StartupError | None:
        try:
            await ensure_topics()
        except StartupError as e:  # returned, not raised: retry_until_done retries raises
            return e
        return None

    stop = await retry_until_done(ensure_topics_or_stop, what="kafka topics", log=log)
    if stop is not None:
        raise stop


def run(args: argparse.Namespace) -> int:
    # deferred: importing faust is slow and other commands do not need it
    from workers.app import create_app
    from workers.shutdown import GracefulWorker
    from workers.sinks.connect import SinkSet

    logging.basicConfig(
        level=args.loglevel.upper(), format="[%(asctime)s] %(levelname)s %(name)s: %(message)s"
    )
    # The live projection generation names the group, seat-facts and changelog topics
    # (workers/generation.py); it changes when `seatflow replay` swaps in a rebuilt copy.
    base = load_settings()
    generation = asyncio.run(
        retry_until_done(lambda: live_generation(base, log), what="generation", log=log)
    )
    pipeline = pipeline_for(base, generation)
    settings, catalog = pipeline.settings, pipeline.catalog
    log.info("projection generation %d (consumer group %s)", generation, settings.consumer_group)
    try:
        asyncio.run(prepare(settings, catalog))
    except StartupError as exc:
        print(f"seatflow worker: {exc}", file=sys.stderr)
        return 2
    asyncio.set_event_loop(asyncio.new_event_loop())
    app = create_app(settings, catalog, SinkSet(settings, generation=generation))
    throttle_logs("aiokafka")  # a broker outage: one line per kind and 30 s, not ten a second
    install_watch(app, settings, generation, log)
    worker = GracefulWorker(
        app, gate=app.seatflow_gate, timeout=settings.shutdown_timeout_s,
        loglevel=args.loglevel, redirect_stdouts=False,
    )  # fmt: skip
    tune_for_streaming()
    try:
        worker.execute_from_commandline()
    except SystemExit as e:  # mode exits 0 after a stop, 1 after an error
        code = e.code if isinstance(e.code, int) else 1
    else:  # pragma: no cover - execute_from_commandline always raises SystemExit
        code = 0
    if (elapsed := worker.since_signal()) is not None:
        log.info("stopped %.2fs after the signal", elapsed)
    return code or worker.exit_code
