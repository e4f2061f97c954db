"""Camera uptime from a scripted sequence of camera.status events, recorded by the portal's
telemetry handler in a real PostgreSQL: outages with start, end and cause, and availability per
local day (Asia/Ho_Chi_Minh) across midnight, with heartbeats, a redelivery and a late event."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import asyncpg

from proto import ids
from proto.v1 import CameraStatus
from services.portal import handlers, store, uptime
from services.runtime import migrations
from portal_samples import ICT

TZ = "Asia/Ho_Chi_Minh"
H = 3600.0


def status(camera: str, at: datetime, state: str, reason: str = "", heartbeat: bool = False) -> CameraStatus:
    return CameraStatus(id=ids.event_id("camera-status", camera, at.isoformat(), state, heartbeat), camera_id=camera,
                        occurred_at=at, state=state, reason=reason, heartbeat=heartbeat)


def t(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=ICT)


CAM = "cam-uptime-a"
SCRIPT = [
    status(CAM, t(20, 6), "online"),
    status(CAM, t(20, 6, 30), "online", heartbeat=True),
    status(CAM, t(20, 23), "offline", "stalled: no frame for 3.0 s"),
    status(CAM, t(20, 23, 30), "offline", "stalled: no frame for 3.0 s", heartbeat=True),
    status(CAM, t(21, 1, 30), "online"),                      # back after local midnight
    status(CAM, t(21, 10), "degraded", "fps 2.1 below 4.0"),
    status(CAM, t(21, 11), "online"),
    status(CAM, t(21, 10, 20), "offline", "connect failed"),  # arrives late, after the 11:00 event
    status(CAM, t(21, 22), "offline", "connection refused"),  # still down when the period ends
]
OTHER = "cam-uptime-b"  # reported once, after the period: not observed in it


async def recorded(database_url: str) -> asyncpg.Pool:
    await migrations.migrate(database_url, services=["portal"])
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    for event in [*SCRIPT, SCRIPT[2], status(OTHER, t(22, 8), "online")]:  # SCRIPT[2] again: a redelivery
        await handlers.on_telemetry(pool, event)
    return pool


async def changes(pool: asyncpg.Pool, start: datetime, end: datetime) -> list[uptime.Change]:
    async with pool.acquire() as conn:
        rows = await store.camera_changes(conn, start, end)
    return [uptime.Change(r["camera_id"], r["occurred_at"], r["state"], r["reason"]) for r in rows]


async def test_uptime_from_scripted_camera_status(database_url: str) -> None:
    pool = await recorded(database_url)
    try:
        async with pool.acquire() as conn:
            stored = await conn.fetch("SELECT state, occurred_at FROM portal.camera_state_changes "
                                      "WHERE camera_id = $1 ORDER BY occurred_at", CAM)
            latest = await conn.fetchrow("SELECT state, reason FROM portal.camera_health WHERE camera_id = $1", CAM)
        # Heartbeats and the redelivery add no row; the late 10:20 event is in its place in time.
        assert [(r["state"], r["occurred_at"]) for r in stored] == [
            ("online", t(20, 6)), ("offline", t(20, 23)), ("online", t(21, 1, 30)), ("degraded", t(21, 10)),
            ("offline", t(21, 10, 20)), ("online", t(21, 11)), ("offline", t(21, 22))]
        assert (latest["state"], latest["reason"]) == ("offline", "connection refused")

        start, end = t(20, 0), t(22, 0)
        history = await changes(pool, start, end)
        assert OTHER not in {c.camera_id for c in history}

        found = uptime.outages(history, start, end)
        assert [(o.start, o.end, o.state, o.cause) for o in found] == [
            (t(20, 23), t(21, 1, 30), "offline", "stalled: no frame for 3.0 s"),
            (t(21, 10), t(21, 11), "offline", "fps 2.1 below 4.0; connect failed"),
            (t(21, 22), None, "offline", "connection refused")]
        assert found[0].duration_s(end) == 2.5 * H and found[2].duration_s(end) == 2 * H

        days = {row.day: row for row in uptime.daily(history, start, end, TZ)}
        assert set(days) == {date(2026, 11, 20), date(2026, 11, 21)}
        first, second = days[date(2026, 11, 20)], days[date(2026, 11, 21)]
        # The 20th is observed from the first report (06:00) to local midnight: 17 h up, 1 h down.
        assert (first.online_s, first.degraded_s, first.offline_s) == (17 * H, 0, 1 * H)
        assert first.availability == 17 / 18
        # The 21st: down 00:00–01:30 (the outage across midnight), 10:00–11:00 (20 min degraded,
        # 40 min offline) and from 22:00; a UTC day (17:00–17:00 local) would split it elsewhere.
        assert second.observed_s == 24 * H
        assert (second.degraded_s, second.offline_s) == (20 * 60, 1.5 * H + 40 * 60 + 2 * H)
        assert second.online_s == 24 * H - second.degraded_s - second.offline_s

        # A period starting after the outage began: its real start is kept, its time before the
        # period is not counted, and the state at the start comes from the change before it.
        later = await changes(pool, t(21, 0), t(21, 12))
        assert uptime.outages(later, t(21, 0), t(21, 12))[0].start == t(20, 23)
        (only,) = uptime.daily(later, t(21, 0), t(21, 12), TZ)
        assert (only.offline_s, only.degraded_s, only.observed_s) == (1.5 * H + 40 * 60, 20 * 60, 12 * H)
        total = uptime.per_camera(uptime.daily(history, start, end, TZ))[0]
        assert total.observed_s == first.observed_s + second.observed_s
    finally:
        await pool.close()


def test_daily_splits_at_local_midnight_not_utc() -> None:
    """One outage 16:00–18:00 UTC: 23:00–01:00 in Hà Nội, one hour on each local day."""
    history = [uptime.Change("c", t(20, 0), "online"), uptime.Change("c", t(20, 23), "offline", "x"),
               uptime.Change("c", t(21, 1), "online")]
    rows = uptime.daily(history, t(20, 0), t(22, 0), TZ)
    assert [(r.day, r.offline_s) for r in rows] == [(date(2026, 11, 20), H), (date(2026, 11, 21), H)]
    utc = {r.day: r.offline_s for r in uptime.daily(history, t(20, 0), t(22, 0), "UTC")}
    assert utc == {date(2026, 11, 19): 0, date(2026, 11, 20): 2 * H, date(2026, 11, 21): 0}  # both hours on one UTC day
    assert sum(r.observed_s for r in rows) == (t(22, 0) - t(20, 0)) / timedelta(seconds=1)


async def test_uptime_page_from_events_on_the_bus(portal_url, start_portal, js, wait_for) -> None:
    """camera.status over NATS → the portal's telemetry consumer → the uptime page, for the
    operations centre and transport; citizens are refused."""
    from proto import subjects
    from services.runtime import bus

    running = await start_portal(portal_url)
    camera = running.camera
    script = [status(camera, e.occurred_at, e.state, e.reason, e.heartbeat) for e in SCRIPT]
    for event in script:
        await bus.publish(js, subjects.camera_status(camera), event, service="tests")
    conn = await asyncpg.connect(portal_url)
    try:
        await wait_for(lambda: conn.fetchval("SELECT count(*) = 7 FROM portal.camera_state_changes WHERE camera_id = $1",
                                             camera), what="seven changes of state recorded")
    finally:
        await conn.close()
    url = f"{running.base}/camera/hoat-dong?from=2026-11-20&to=2026-11-21"
    for role in ("operations_centre", "transport"):
        async with running.http.get(url, headers=running.headers(role)) as r:
            assert r.status == 200, role
            page = await r.text()
        assert "fps 2.1 below 4.0; Không kết nối được camera (connect failed)" in page
        assert "stalled: no frame for 3.0 s" in page
        assert "94,4 %" in page  # the 20th: 17 of 18 observed hours online
        assert "23:00:00 20/11/2026" in page and "01:30:00 21/11/2026" in page
    async with running.http.get(url, headers=running.headers("citizen")) as r:
        assert r.status == 403
