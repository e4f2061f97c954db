"""The HTTP side every service has: /healthz, /readyz and /metrics (Prometheus).

/healthz answers while the event loop runs (liveness); /readyz runs the service's checks
(NATS connected, database pool healthy...) and answers 503 naming the ones that fail, and
also while the service drains, so that a Service stops routing to it before it exits.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

ReadyCheck = Callable[[], bool | Awaitable[bool]]

CHECK_TIMEOUT_S = 2.0


async def _run_check(check: ReadyCheck) -> bool:
    try:
        result = check()
        if inspect.isawaitable(result):
            result = await asyncio.wait_for(result, CHECK_TIMEOUT_S)
        return bool(result)
    except Exception as exc:  # a failing check means "not ready", and says why in the log
        log.warning("readiness check failed", extra={"fields": {"error": repr(exc)}})
        return False


def make_app(
    ready_checks: Mapping[str, ReadyCheck],
    *,
    draining: asyncio.Event | None = None,
    routes: Iterable[web.RouteDef] = (),
    registry: CollectorRegistry = REGISTRY,
    app: web.Application | None = None,
) -> web.Application:
    app = app if app is not None else web.Application()

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        results = {name: await _run_check(check) for name, check in ready_checks.items()}
        if draining is not None and draining.is_set():
            results["draining"] = False
        ok = all(results.values())
        return web.json_response({"ready": ok, "checks": results}, status=200 if ok else 503)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.add_routes([web.get("/healthz", healthz), web.get("/readyz", readyz), web.get("/metrics", metrics), *routes])
    return app


async def serve(
    port: int,
    ready_checks: Mapping[str, ReadyCheck],
    *,
    host: str = "127.0.0.1",
    draining: asyncio.Event | None = None,
    routes: Iterable[web.RouteDef] = (),
    app: web.Application | None = None,
) -> tuple[web.AppRunner, int]:
    """Start the server; returns the runner (call `cleanup()` on stop) and the bound port (for port 0)."""
    runner = web.AppRunner(make_app(ready_checks, draining=draining, routes=routes, app=app), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1] if port == 0 else port  # type: ignore[union-attr]
    log.info("http listening", extra={"fields": {"host": host, "port": bound}})
    return runner, bound
