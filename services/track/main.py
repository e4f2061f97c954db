"""Track service: tracks, violation rules and evidence (the rules arrive with the track issue).

Today it is the skeleton every service shares: settings → NATS → streams → HTTP → wait → drain.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack

from services.runtime import bus, http, lifecycle, logs, settings
from services.track.settings import Settings

SERVICE = "track"
log = logging.getLogger(SERVICE)


async def run(config: Settings) -> None:
    stop = lifecycle.stop_event()
    async with AsyncExitStack() as stack:
        nc = await bus.connect(config.nats_url, SERVICE)
        stack.push_async_callback(bus.drain, nc)
        await bus.ensure_streams(nc.jetstream())
        runner, _ = await http.serve(config.http_port, {"nats": lambda: nc.is_connected}, draining=stop)
        stack.push_async_callback(runner.cleanup)
        log.info("ready")
        await stop.wait()
    log.info("stopped")


def main(argv: list[str]) -> int:
    config = settings.load(Settings, service=SERVICE)
    logs.setup(SERVICE, config.log_level)
    asyncio.run(run(config))
    return 0
