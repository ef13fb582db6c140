"""One HTTP port: /metrics (Prometheus text format), /healthz (alive), /readyz (ready).

aiohttp (already a Faust dependency) in the worker's own event loop: /healthz answering
proves that loop runs; prometheus_client's threaded server could answer while the loop is
stuck. A port that cannot be bound is logged and the worker goes on without the server:
losing metrics must not stop the projection (the `SeatflowWorkerDown` alert sees it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from workers.observability.health import readiness_body
from workers.observability.metrics import WorkerState

log = logging.getLogger("seatflow.metrics")


def make_app(
    registry: CollectorRegistry, state: Callable[[], WorkerState] | None = None
) -> web.Application:
    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(_: web.Request) -> web.Response:
        if state is None:
            return web.json_response({"status": "ready", "checks": {}})
        current = state()
        return web.json_response(readiness_body(current), status=200 if current.ready else 503)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def serve(
    host: str,
    port: int,
    registry: CollectorRegistry,
    state: Callable[[], WorkerState] | None = None,
) -> web.AppRunner | None:
    """Start serving; None when `port` is 0 (disabled) or cannot be bound."""
    if not port:
        return None
    runner = web.AppRunner(make_app(registry, state), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        log.error(
            "metrics server cannot listen on %s:%d (%s); running without /metrics, "
            "/healthz and /readyz",
            host,
            port,
            exc,
        )
        await runner.cleanup()
        return None
    log.info("metrics on http://%s:%d/metrics (also /healthz, /readyz)", host, port)
    return runner
