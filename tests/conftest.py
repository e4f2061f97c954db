"""Fixtures on real servers: a nats-server per session, PostgreSQL from DATABASE_URL or embedded.

Names are unique per test (`unique`), so tests stay independent while sharing the servers.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import nats
import pytest

from services import localstack

REPO = Path(__file__).resolve().parents[1]


# --- parallel runs ---------------------------------------------------------------------------------
# make test runs two pytest-xdist workers (`-n 2 --dist loadscope`), each with its own nats-server
# and PostgreSQL: much of the suite waits on servers, processes and clocks, and the other worker
# uses that time. A worker takes a whole module, so that module-scoped fixtures (a replay, a
# clip's detections) run once; modules that share a session cache go to the same worker.
SAME_WORKER = {
    "tests/track/test_track_clips.py": "track-haiphong-detections",  # track_clips.clip_detections
    "tests/track/test_track_counts.py": "track-haiphong-detections",
    "tests/track/test_track_discontinuity.py": "track-haiphong-detections",
}


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """--dist loadscope, by module and SAME_WORKER (xdist's own loadgroup marks do not take with
    pytest 9, whose node ids it can no longer rewrite)."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return SAME_WORKER.get(module, module)

    return ModuleScheduling(config, log)


@pytest.fixture(scope="session")
def repo_dir() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the repo: models and real data (never copied into the repo)."""
    path = Path(os.environ.get("ROADWATCH_SHARED", REPO.parent / "shared")).resolve()
    if not (path / "models").is_dir() or not (path / "data").is_dir():
        pytest.fail(f"{path} with models/ and data/ is needed by this test (set ROADWATCH_SHARED)")
    return path


@pytest.fixture
def unique() -> str:
    """A short token for stream, subject, consumer and database names of one test."""
    return uuid.uuid4().hex[:10]


# --- NATS ----------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, dict[str, str]]]:
    """(port, user -> password): nats-server with the accounts and users of deploy/nats/accounts.conf,
    as under make run and on Kubernetes, with passwords made up for this session."""
    port = localstack.free_port()
    store = tmp_path_factory.mktemp("nats")
    passwords = localstack.nats_passwords()
    process = localstack.start_nats(store / "js", port, log_file=store / "nats.log", passwords=passwords)
    yield port, passwords
    localstack.stop_process(process)


@pytest.fixture(scope="session")
def nats_url(nats_server: tuple[int, dict[str, str]]) -> str:
    """A user of the services' account (ROADWATCH): what every service may do, the tests may do."""
    port, passwords = nats_server
    return localstack.nats_url(port, "portal", passwords)


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[nats.NATS]:
    client = await nats.connect(nats_url, name="tests")
    yield client
    await client.close()


@pytest.fixture
async def js(nc: nats.NATS):
    return nc.jetstream()


# --- PostgreSQL -----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """A server where tests may create databases: DATABASE_URL's, or an embedded one."""
    given = os.environ.get("DATABASE_URL")
    if given:
        if not localstack.database_reachable(given):
            pytest.fail(f"DATABASE_URL={given} is not reachable")
        yield localstack.with_database(given, "postgres")
        return
    port = localstack.free_port()
    # Not under pytest's tmp: that tree is private to root (0700), and PostgreSQL runs as another user.
    base = Path(tempfile.mkdtemp(prefix="roadwatch-pg-"))
    os.environ["ROADWATCH_PG_FAST"] = "1"  # fsync off: test data is thrown away
    process = localstack.start_postgres(base / "data", port, log_file=base / "postgres.log")
    yield localstack.embedded_database_url(port, "postgres")
    localstack.stop_process(process)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
async def database_url(postgres_admin_url: str, unique: str) -> AsyncIterator[str]:
    """A fresh, empty database for one test, dropped afterwards."""
    name = f"rw_test_{unique}"
    admin = await asyncpg.connect(postgres_admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield localstack.with_database(postgres_admin_url, name)
    admin = await asyncpg.connect(postgres_admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def wait_for():
    """Poll an async condition until it is true (servers are real: things take a moment)."""

    async def wait(condition, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            result = await condition()
            if result:
                return result
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            await asyncio.sleep(interval)

    return wait
