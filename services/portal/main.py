"""The portal service: settings → agencies → NATS → PostgreSQL → consumers, outbox and HTTP → drain.

`roadwatch portal` runs it; `roadwatch portal token` prints a new bearer token and the digest to
put in the agencies file; `roadwatch portal report` is `roadwatch report` (the coordination report);
`roadwatch portal purge` applies the retention periods once (a cron job), an audit line per purge.

SIGHUP re-reads the agencies file, so that a token is revoked or a user added without a restart;
a bad file is refused with an error in the log and the running directory stays in force.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from contextlib import AsyncExitStack

from aiohttp import web

from proto import streams
from services.portal import agencies, anchors, api, board, csrf, frames, handlers
from services.portal.context import KEY, Portal, RateLimiter
from services.portal.settings import Settings
from services.runtime import bus, db, http, lifecycle, settings

SERVICE = "portal"
log = logging.getLogger(SERVICE)


def build_app(portal: Portal) -> web.Application:
    """The aiohttp application with every portal route (the runtime adds /healthz, /readyz, /metrics)."""
    from services.portal import openapi, pages, report, uptime_page  # noqa: PLC0415 (templates, fonts: loaded with the app)

    app = web.Application(middlewares=[api.errors_and_metrics, csrf.protect], client_max_size=api.MAX_BODY)
    app[KEY] = portal
    app.add_routes(api.routes())
    app.add_routes(openapi.routes())
    app.add_routes(report.routes())
    app.add_routes(uptime_page.routes())
    pages.setup(app, portal.config.timezone)
    return app


async def run(config: Settings, *, directory: agencies.Directory, stop: asyncio.Event | None = None,
              ready: asyncio.Future | None = None,
              violations_consumer: streams.Consumer = streams.PORTAL,
              notices_consumer: streams.Consumer = streams.PORTAL_NOTICES,
              telemetry_consumer: streams.Consumer = streams.PORTAL_TELEMETRY,
              incidents_consumer: streams.Consumer = streams.PORTAL_INCIDENTS, reload_on_hup: bool = False) -> int:
    """Run until stopped. The consumer arguments exist for tests, which share one nats-server
    (and run the service in their own process, where SIGHUP is not the portal's to take)."""
    stop = stop or lifecycle.stop_event()
    async with AsyncExitStack() as stack:
        nc, js = await bus.open_bus(stack, config.nats_url, SERVICE)
        pool = await db.create_pool(config.database_url, max_size=config.db_pool_size)
        stack.push_async_callback(pool.close)
        key = anchors.load_key(config.audit_anchor_key_file) if config.audit_anchor_key_file else None
        portal = Portal(config=config, pool=pool, js=js, directory=directory,
                        limiter=RateLimiter(config.public_rate_per_minute), nc=nc, anchor_key=key,
                        frames=frames.LatestFrames(js, max_age_s=config.board_frame_cache_s),
                        board=board.BoardHub(config.database_url, pool), views=board.ViewAudit(config.board_view_audit_s))
        # Ready once its consumers run and the board listens (below), not as soon as HTTP serves.
        started = asyncio.Event()
        checks = {"nats": lambda: nc.is_connected, "database": lambda: db.pool_ready(pool), "started": started.is_set}
        runner, port = await http.serve(config.http_port, checks, draining=stop, app=build_app(portal),
                                        host=config.http_host)
        stack.push_async_callback(runner.cleanup)

        tz = config.timezone
        duplicates = handlers.DuplicateRule(config.duplicate_window_s, config.duplicate_radius_m)

        async def on_violation(event, _msg) -> None:
            await handlers.on_violation(pool, tz, event, duplicates)

        async def on_notice(event, _msg) -> None:
            await handlers.on_notice(pool, event)

        async def on_telemetry(event, _msg) -> None:
            await handlers.on_telemetry(pool, event)

        async def on_incident(event, _msg) -> None:
            await handlers.on_incident(pool, event)

        consumers = [
            bus.Consumer(js, service=SERVICE, consumer=violations_consumer, decode=handlers.decode_violation,
                         handle=on_violation),
            bus.Consumer(js, service=SERVICE, consumer=notices_consumer, decode=handlers.decode_notice,
                         handle=on_notice),
            bus.Consumer(js, service=SERVICE, consumer=telemetry_consumer, decode=handlers.decode_telemetry,
                         handle=on_telemetry, batch=64),
            bus.Consumer(js, service=SERVICE, consumer=incidents_consumer, decode=handlers.decode_incident,
                         handle=on_incident),
        ]
        if reload_on_hup:
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGHUP, lambda: reload_directory(portal))
            stack.callback(loop.remove_signal_handler, signal.SIGHUP)
        tasks = [asyncio.create_task(c.run(stop)) for c in consumers]
        tasks.append(asyncio.create_task(portal.outbox_loop(stop)))
        tasks.append(asyncio.create_task(portal.board.run(stop)))
        try:  # listening before ready, so that no board change of a just-started replica goes unheard
            await asyncio.wait_for(portal.board.listening.wait(), timeout=10)
        except asyncio.TimeoutError:
            log.warning("board: not listening to PostgreSQL yet; live boards start when it is")
        if key is not None:
            tasks.append(asyncio.create_task(anchors.anchor_loop(js, pool, key, config.audit_anchor_interval_s, stop,
                                                                   config.audit_chain)))
        else:
            log.warning("audit anchoring is off (AUDIT_ANCHOR_KEY_FILE unset): rows cut off the end of the audit "
                        "log could not be detected")
        log.info("ready", extra={"fields": {"port": port, "agencies": len(directory.agencies)}})
        started.set()
        if ready is not None:
            ready.set_result((portal, port))
        code = await lifecycle.until_stopped(stop, tasks)
    log.info("stopped")
    return code


def reload_directory(portal: Portal) -> None:
    try:
        directory = agencies.load(portal.config.agencies_file)
    except agencies.AgencyFileError as exc:
        log.error("agencies file refused; keeping the previous one", extra={"fields": {"error": str(exc)}})
        return
    portal.directory = directory
    log.info("agencies file reloaded", extra={"fields": {
        "agencies": len(directory.agencies), "users": directory.user_count}})


def load_directory(path: str) -> agencies.Directory:
    """The agencies file, or exit 2 naming the file, line and field."""
    try:
        return agencies.load(path)
    except agencies.AgencyFileError as exc:
        print(f"roadwatch portal: invalid agencies file (AGENCIES_FILE) {exc}", file=sys.stderr)
        raise SystemExit(settings.EXIT_BAD_SETTING) from None


def token(argv: list[str]) -> int:
    """`roadwatch portal token`: a new bearer token and the digest to put in the agencies file."""
    new, digest = agencies.new_token()
    print(f"token (give to the user, once):   {new}\ntoken_sha256 (put in the agencies file): {digest}")
    return 0


def purge(argv: list[str]) -> int:
    """`roadwatch portal purge`: apply the retention periods once (a cron job)."""
    from services.portal import retention  # noqa: PLC0415

    config = lifecycle.configure(SERVICE, Settings)
    return asyncio.run(retention.run_once(config))


def report(argv: list[str]) -> int:
    from services.portal import report  # noqa: PLC0415

    return report.main(argv, prog="roadwatch portal report")


TOOLS = {"token": token, "report": report, "purge": purge}


def main(argv: list[str] | None = None) -> int:
    return lifecycle.main(SERVICE, Settings, argv, tools=TOOLS, start=lambda config: run(
        config, directory=load_directory(config.agencies_file), reload_on_hup=True))
