"""Registry fixtures: a fresh database per test with the registry schema migrated."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import asyncpg
import pytest

from services.registry import synth
from services.runtime import migrations

TODAY = date(2026, 11, 29)


@pytest.fixture
async def registry_url(database_url: str) -> str:
    await migrations.migrate(database_url, migrations.discover(services=["registry"]))
    return database_url


@pytest.fixture
async def conn(registry_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(registry_url)
    yield connection
    await connection.close()


@pytest.fixture(scope="session")
def province() -> synth.Province:
    return synth.load_province(synth.DEFAULT_PROVINCE)


@pytest.fixture
def synth_csv(tmp_path: Path, province: synth.Province):
    """Write a synthetic extract of n vehicles; returns its path."""

    def make(n: int, seed: int = 7, name: str = "vehicles.csv") -> Path:
        path = tmp_path / name
        with path.open("w", newline="", encoding="utf-8") as out:
            synth.write(out, n, province, seed=seed, today=TODAY)
        return path

    return make
