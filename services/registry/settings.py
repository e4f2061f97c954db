"""Settings of the registry service, from environment variables (see the README's configuration table)."""

from __future__ import annotations

from services.runtime.settings import DatabaseSettings, SettingError


class Settings(DatabaseSettings, frozen=True, kw_only=True):
    database_url: str = "postgresql://postgres@127.0.0.1:5432/roadwatch"
    http_port: int = 8084
    # Connections to PostgreSQL; owner lookups are batched, so a few serve thousands of requests/s.
    db_pool_size: int = 8
    # How long a violation waits for PostgreSQL to come back before it is nak'ed (keep it under
    # the consumer's ack_wait of 30 s).
    db_retry_s: float = 15.0
    # Requests to lookup-owner answered by one SQL query at most.
    lookup_batch_max: int = 256
    # A hotlisted vehicle seen by one camera within this many seconds is one hit, not one per frame.
    hotlist_hit_window_s: int = 60
    # The hotlist is reloaded on every change (LISTEN/NOTIFY) and at least this often.
    hotlist_reload_s: float = 60.0
    # Recorded lookup outcomes (which make redelivery idempotent) hold owner data; kept this long.
    lookup_retention_days: int = 30

    def __post_init__(self) -> None:
        super().__post_init__()
        for variable, value, low, high in (
            ("DB_POOL_SIZE", self.db_pool_size, 1, 200),
            ("DB_RETRY_S", self.db_retry_s, 0, 25),
            ("LOOKUP_BATCH_MAX", self.lookup_batch_max, 1, 10_000),
            ("HOTLIST_HIT_WINDOW_S", self.hotlist_hit_window_s, 1, 86_400),
            ("HOTLIST_RELOAD_S", self.hotlist_reload_s, 1, 86_400),
            ("LOOKUP_RETENTION_DAYS", self.lookup_retention_days, 1, 3650),
        ):
            if not low <= value <= high:
                raise SettingError(variable, f"{value} is not between {low} and {high}")
