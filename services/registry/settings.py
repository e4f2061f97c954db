"""Settings of the registry service, from environment variables (see the README's configuration table)."""

from __future__ import annotations

from typing import Annotated

from services.runtime.settings import DatabaseSettings, PoolSize, between


class Settings(DatabaseSettings, frozen=True, kw_only=True):
    database_url: str = "postgresql://postgres@127.0.0.1:5432/roadwatch"
    http_port: int = 8084
    # Connections to PostgreSQL; owner lookups are batched, so a few serve thousands of requests/s.
    db_pool_size: PoolSize = 8
    # How long a violation waits for PostgreSQL to come back before it is nak'ed (keep it under
    # the consumer's ack_wait of 30 s).
    db_retry_s: Annotated[float, between(0, 25)] = 15.0
    # Requests to lookup-owner answered by one SQL query at most.
    lookup_batch_max: Annotated[int, between(1, 10_000)] = 256
    # A hotlisted vehicle seen by one camera within this many seconds is one hit, not one per frame.
    hotlist_hit_window_s: Annotated[int, between(1, 86_400)] = 60
    # The hotlist is reloaded on every change (LISTEN/NOTIFY) and at least this often.
    hotlist_reload_s: Annotated[float, between(1, 86_400)] = 60.0
    # Recorded lookup outcomes (which make redelivery idempotent) hold owner data; kept this long.
    lookup_retention_days: Annotated[int, between(1, 3650)] = 30
