"""The camera uptime page (/camera/hoat-dong): availability per camera and local day, and each
outage with its start, end and cause, for the operations centre, the transport department and
the police (the "uptime" permission; never citizens)."""

from __future__ import annotations

import zoneinfo
from datetime import datetime, timedelta, timezone

from aiohttp import web

from services.portal import actions, report_format, store, uptime
from services.portal.context import KEY, Portal
from services.portal.pages import CAMERA_LABELS, _render, _user


async def uptime_page(request: web.Request) -> web.Response:
    _user(request, "uptime")
    portal: Portal = request.app[KEY]
    tz_name = portal.config.timezone
    tz = zoneinfo.ZoneInfo(tz_name)
    today = datetime.now(tz).date()
    try:
        start, end = actions.parse_period(request.query.get("from") or (today - timedelta(days=6)).isoformat(),
                                          request.query.get("to") or today.isoformat(), tz)
    except actions.ActionError as exc:
        raise web.HTTPBadRequest(text=exc.message) from exc
    until = min(end, datetime.now(timezone.utc))
    async with portal.pool.acquire() as conn:
        rows = await store.camera_changes(conn, start, until)
    changes = [uptime.Change(r["camera_id"], r["occurred_at"], r["state"], r["reason"]) for r in rows]
    days = uptime.daily(changes, start, until, tz_name)
    outages = uptime.outages(changes, start, until)
    day_list = sorted({d.day for d in days})
    grid = {(d.camera_id, d.day): d for d in days}
    totals = uptime.per_camera(days)
    return _render(request, "uptime.html", totals=totals, grid=grid, day_list=day_list, outages=outages,
                   until=until, fmt=report_format, state_labels=CAMERA_LABELS,
                   start=start.date().isoformat(), end=(end - timedelta(days=1)).date().isoformat())


def routes() -> list[web.RouteDef]:
    return [web.get("/camera/hoat-dong", uptime_page)]
