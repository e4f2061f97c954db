"""Portal fixtures: a migrated database, and the service started in this event loop with its
own durable consumers (tests share one nats-server)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from proto import streams, subjects
from services.portal import agencies, main as portal_main
from services.portal.context import Portal
from services.portal.settings import EXAMPLE_AGENCIES, Settings
from services.runtime import migrations

TOKENS = {"police": "demo-police", "commune_police": "demo-commune", "transport": "demo-transport",
          "operations_centre": "demo-ops", "citizen": "demo-citizen"}


@pytest.fixture
async def portal_url(database_url: str) -> str:
    await migrations.migrate(database_url, services=["portal"])
    # Every test has its own database but all share one nats-server, and a decision's event id
    # comes from its case number: start each database's numbering elsewhere, or a second test's
    # CASE-2026-000001 decision would be dropped by JetStream as a repeat of the first's.
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("SELECT setval('portal.case_number', $1)", secrets.randbelow(10**9) + 1)
    finally:
        await conn.close()
    return database_url


@pytest.fixture(scope="session")
def street_dir(shared_dir: Path) -> Path:
    return shared_dir / "data" / "street"


@dataclass
class Running:
    camera: str
    bucket: str  # the evidence bucket of this test (the shared server's `evidence` is track's)
    base: str
    portal: Portal
    http: aiohttp.ClientSession

    def headers(self, role: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKENS[role]}"} if role else {}


@pytest.fixture
async def start_portal(nats_url: str, unique: str) -> AsyncIterator:
    started: list[tuple[asyncio.Event, asyncio.Task, aiohttp.ClientSession]] = []

    async def start(database_url: str, **overrides) -> Running:
        camera = f"cam-{unique}"
        config = Settings(nats_url=nats_url, database_url=database_url, http_port=0, db_pool_size=4,
                          **{"outbox_retry_s": 1.0, "evidence_bucket": f"evidence-{unique}", **overrides})
        directory = agencies.load(EXAMPLE_AGENCIES)
        violations = streams.Consumer(
            name=f"portal-{unique}", stream="VIOLATIONS", max_deliver=4,
            filter_subjects=(f"traffic.violation.identified.v1.{camera}.>", f"traffic.violation.unidentified.v1.{camera}.>"))
        notices = streams.Consumer(
            name=f"portal-notices-{unique}", stream="NOTICES", max_deliver=4,
            filter_subjects=(f"traffic.notice.sent.v1.{camera}.>", f"traffic.notice.failed.v1.{camera}.>",
                             subjects.notice_held(camera)))
        telemetry = streams.Consumer(
            name=f"portal-telemetry-{unique}", stream="TELEMETRY",
            filter_subjects=(subjects.vehicles_counted(camera), subjects.camera_status(camera),
                             subjects.camera_status(f"{camera}-2"), subjects.signal_phase(f"int-{unique}")))
        incidents = streams.Consumer(
            name=f"portal-incidents-{unique}", stream="INCIDENTS", max_deliver=4,
            filter_subjects=(f"traffic.incident.*.v1.{camera}.>",))
        stop, ready = asyncio.Event(), asyncio.get_running_loop().create_future()
        task = asyncio.create_task(portal_main.run(
            config, directory=directory, stop=stop, ready=ready, violations_consumer=violations,
            notices_consumer=notices, telemetry_consumer=telemetry, incidents_consumer=incidents))
        done, _ = await asyncio.wait([ready, task], timeout=30, return_when=asyncio.FIRST_COMPLETED)
        assert ready in done, f"portal did not start: {task.result() if task.done() else 'timeout'}"
        portal, port = ready.result()
        session = aiohttp.ClientSession()
        started.append((stop, task, session))
        return Running(camera, config.evidence_bucket, f"http://127.0.0.1:{port}", portal, session)

    yield start
    for stop, task, session in started:
        await session.close()
        stop.set()
        assert await asyncio.wait_for(task, 30) == 0
