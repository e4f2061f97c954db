"""PostgreSQL pool for the services that own a schema (registry, portal, notify)."""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg

log = logging.getLogger(__name__)


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 10, connect_timeout_s: float = 30.0) -> asyncpg.Pool:
    """Open the pool, waiting for PostgreSQL while it starts (make run, a failover)."""
    deadline = time.monotonic() + connect_timeout_s
    delay = 0.2
    while True:
        try:
            return await asyncpg.create_pool(url, min_size=min_size, max_size=max_size, timeout=5, command_timeout=30)
        except (OSError, asyncpg.CannotConnectNowError, asyncpg.PostgresConnectionError, asyncio.TimeoutError) as exc:
            if time.monotonic() + delay > deadline:
                raise ConnectionError(f"cannot connect to PostgreSQL: {exc!r}") from exc
            log.info("waiting for postgresql", extra={"fields": {"error": repr(exc)}})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


async def pool_ready(pool: asyncpg.Pool) -> bool:
    async with pool.acquire(timeout=2) as conn:
        return await conn.fetchval("SELECT 1") == 1
