"""Settings of the portal service, from environment variables (see the README's configuration table)."""

from __future__ import annotations

import msgspec

from services.runtime.settings import check_common, check_url


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    nats_url: str = "nats://127.0.0.1:4222"
    http_port: int = 8080
    log_level: str = "INFO"
    database_url: str
    db_pool_size: int = 10

    def __post_init__(self) -> None:
        check_common(nats_url=self.nats_url, http_port=self.http_port, log_level=self.log_level)
        check_url("DATABASE_URL", self.database_url, ("postgresql", "postgres"))

