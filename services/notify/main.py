"""Notify service skeleton: settings → NATS → streams → PostgreSQL → HTTP → wait → drain.

Its consumers and pages arrive with the notify issue; the shape stays.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack

from services.notify.settings import Settings
from services.runtime import bus, db, http, lifecycle, logs, settings

SERVICE = "notify"
log = logging.getLogger(SERVICE)


async def run(config: Settings) -> None:
    stop = lifecycle.stop_event()
    async with AsyncExitStack() as stack:
        nc = await bus.connect(config.nats_url, SERVICE)
        stack.push_async_callback(bus.drain, nc)
        await bus.ensure_streams(nc.jetstream())
        pool = await db.create_pool(config.database_url, max_size=config.db_pool_size)
        stack.push_async_callback(pool.close)
        checks = {"nats": lambda: nc.is_connected, "database": lambda: db.pool_ready(pool)}
        runner, _ = await http.serve(config.http_port, checks, draining=stop)
        stack.push_async_callback(runner.cleanup)
        log.info("ready")
        await stop.wait()
    log.info("stopped")


def main(argv: list[str]) -> int:
    config = settings.load(Settings, service=SERVICE)
    logs.setup(SERVICE, config.log_level)
    asyncio.run(run(config))
    return 0
