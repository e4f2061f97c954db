"""The figures of the coordination report (sơ kết) for one agency and period, read from PostgreSQL.

Only aggregates: no plate, no owner, so the report may be handed to every agency at the table.
Every figure is a function of rows that do not change once the period is over (violation times,
notice times, resolutions, state changes), so the report for a past period can be rebuilt at
any later date and gives the same figures; only `generated_at` differs.

Deadlines are counted for the cases whose deadline fell inside the period (so each one is
decided when the period ends): the notice deadline (DESIGN.md §4: within `notice_within_days`
of the violation) and the resolution deadline (`warning_after_days` after the notice, then the
inspection warning). The periods are the notify configuration's (NOTIFY_CONFIG `deadlines:`).
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import yaml

from services.portal import report_incidents, store, uptime
from services.portal.agencies import Agency

SECTIONS = ("violations", "deadlines", "incidents", "uptime", "traffic")
# What each role's report carries: commune police see the cases of owners in their communes (as
# in the portal), not the cameras, counts or incidents of the province.
SECTIONS_BY_ROLE = {
    "police": SECTIONS,
    "operations_centre": SECTIONS,
    "transport": SECTIONS,
    "commune_police": ("violations", "deadlines"),
}
CONFIRMED = ("confirmed", "notified", "warned", "resolved")


class Deadlines(msgspec.Struct, frozen=True, kw_only=True):
    """The legal periods, read from the notify configuration's `deadlines:` (other keys ignored)."""

    notice_within_days: int = 10
    respond_within_days: int = 20
    warning_after_days: int = 20


def load_deadlines(path: str | Path | None) -> Deadlines:
    if not path:
        return Deadlines()
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    return msgspec.convert(data.get("deadlines") or {}, Deadlines)


class ReportRefused(Exception):
    """The agency's role has no report (citizens)."""


@dataclass(frozen=True)
class Scope:
    agency_id: str
    agency_name: str
    role: str
    communes: tuple[str, ...] | None  # None: the whole province
    sections: tuple[str, ...]


def scope_for(agency: Agency | None) -> Scope:
    """The report an agency receives; None: the full report (the operators' command line)."""
    if agency is None:
        return Scope("", "", "police", None, SECTIONS)
    if agency.role not in SECTIONS_BY_ROLE:
        raise ReportRefused(f"agency {agency.id} ({agency.role}) receives no report")
    communes = tuple(agency.communes) if agency.role == "commune_police" else None
    return Scope(agency.id, agency.full_name, agency.role, communes, SECTIONS_BY_ROLE[agency.role])


@dataclass
class ReportData:
    scope: Scope
    start: datetime
    end: datetime  # exclusive
    generated_at: datetime
    timezone: str
    deadlines: Deadlines
    by_type: list[dict[str, Any]] = field(default_factory=list)
    by_camera: list[dict[str, Any]] = field(default_factory=list)
    by_hour: list[dict[str, Any]] = field(default_factory=list)
    by_vehicle_class: list[dict[str, Any]] = field(default_factory=list)
    notice_deadline: dict[str, int] = field(default_factory=dict)
    resolution_deadline: dict[str, int] = field(default_factory=dict)
    notices_by_channel: list[dict[str, Any]] = field(default_factory=list)
    incidents: report_incidents.IncidentSummary | None = None  # None: no incident data
    uptime_cameras: list[uptime.DayUptime] = field(default_factory=list)
    uptime_days: list[uptime.DayUptime] = field(default_factory=list)
    outages: list[uptime.Outage] = field(default_factory=list)
    traffic: list[dict[str, Any]] = field(default_factory=list)

    @property
    def totals(self) -> dict[str, int]:
        return {k: sum(r[k] for r in self.by_type) for k in ("total", "confirmed", "rejected", "awaiting_review")}

    @property
    def uptime_until(self) -> datetime:
        return min(self.end, self.generated_at)


GROUPS = {"type": "violation_type", "camera": "camera_id", "vehicle_class": "vehicle_class",
          "hour": "extract(hour FROM violation_at AT TIME ZONE $3)::int"}
SCOPE = "($4::text[] IS NULL OR owner_commune = ANY($4))"


async def violations_by(conn: asyncpg.Connection, group: str, start: datetime, end: datetime, tz: str,
                        communes: tuple[str, ...] | None) -> list[dict[str, Any]]:
    """Cases by type, camera (with its most frequent address), local hour or vehicle class. A case
    merged into another is the same violation: counted once, as the case it joined."""
    rows = await conn.fetch(
        f"""SELECT {GROUPS[group]} AS key, count(*) AS total,
                   count(*) FILTER (WHERE state = ANY('{{{",".join(CONFIRMED)}}}')) AS confirmed,
                   count(*) FILTER (WHERE state = 'rejected') AS rejected,
                   count(*) FILTER (WHERE state IN ('identified', 'unidentified', 'detected')) AS awaiting_review,
                   mode() WITHIN GROUP (ORDER BY address) AS place
            FROM portal.cases
            WHERE violation_at >= $1 AND violation_at < $2 AND state <> 'merged' AND $3::text IS NOT NULL AND {SCOPE}
            GROUP BY 1 ORDER BY 1""", start, end, tz, list(communes) if communes is not None else None)
    return [dict(r) for r in rows]


async def notice_deadline(conn: asyncpg.Connection, start: datetime, end: datetime, days: int,
                          communes: tuple[str, ...] | None) -> dict[str, int]:
    """Cases whose notice deadline (violation + days) fell in the period: met (notice sent by
    then), late (not by then), and of the late ones still without a notice when the period
    ended. Rejected and merged cases owe no notice, nor one resolved before any notice."""
    row = await conn.fetchrow(
        f"""WITH due AS (
                SELECT violation_at + make_interval(days => $3) AS deadline, notified_at FROM portal.cases
                WHERE state NOT IN ('rejected', 'merged') AND NOT (state = 'resolved' AND notified_at IS NULL)
                  AND violation_at >= $1::timestamptz - make_interval(days => $3)
                  AND violation_at < $2::timestamptz - make_interval(days => $3)
                  AND {SCOPE})
            SELECT count(*) AS due, count(*) FILTER (WHERE notified_at <= deadline) AS met,
                   count(*) FILTER (WHERE notified_at IS NULL OR notified_at > deadline) AS late,
                   count(*) FILTER (WHERE notified_at IS NULL OR notified_at >= $2) AS unsent_at_end
            FROM due""", start, end, days, list(communes) if communes is not None else None)
    return dict(row)


async def resolution_deadline(conn: asyncpg.Connection, start: datetime, end: datetime, days: int,
                              communes: tuple[str, ...] | None) -> dict[str, int]:
    """Notified cases whose resolution deadline (notice + days) fell in the period: met (resolved
    by then), late, and of the late ones how many got the inspection warning before the end."""
    row = await conn.fetchrow(
        f"""WITH due AS (
                SELECT notified_at + make_interval(days => $3) AS deadline, resolved_at, warned_at FROM portal.cases
                WHERE notified_at IS NOT NULL AND state <> 'merged'
                  AND notified_at >= $1::timestamptz - make_interval(days => $3)
                  AND notified_at < $2::timestamptz - make_interval(days => $3)
                  AND {SCOPE})
            SELECT count(*) AS due, count(*) FILTER (WHERE resolved_at <= deadline) AS met,
                   count(*) FILTER (WHERE resolved_at IS NULL OR resolved_at > deadline) AS late,
                   count(*) FILTER (WHERE warned_at IS NOT NULL AND warned_at < $2) AS warned
            FROM due""", start, end, days, list(communes) if communes is not None else None)
    return dict(row)


async def notices_by_channel(conn: asyncpg.Connection, start: datetime, end: datetime, days: int,
                             communes: tuple[str, ...] | None) -> list[dict[str, Any]]:
    """Owner notices reported by notify in the period, per channel: sent within the notice
    deadline of their violation, sent after it, and failed after every retry."""
    rows = await conn.fetch(
        f"""SELECT n.channel AS key,
                   count(*) FILTER (WHERE n.outcome = 'sent') AS sent,
                   count(*) FILTER (WHERE n.outcome = 'sent'
                                      AND n.occurred_at <= c.violation_at + make_interval(days => $3)) AS on_time,
                   count(*) FILTER (WHERE n.outcome = 'sent'
                                      AND n.occurred_at > c.violation_at + make_interval(days => $3)) AS late,
                   count(*) FILTER (WHERE n.outcome = 'failed') AS failed
            FROM portal.notices n JOIN portal.cases c ON c.case_id = n.case_id
            WHERE n.kind = 'owner_notice' AND n.outcome IN ('sent', 'failed')
              AND n.occurred_at >= $1 AND n.occurred_at < $2 AND {SCOPE.replace('owner_commune', 'c.owner_commune')}
            GROUP BY 1 ORDER BY 1""", start, end, days, list(communes) if communes is not None else None)
    return [dict(r) for r in rows]


async def traffic(conn: asyncpg.Connection, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Vehicles per camera, count line (the `lane` column: "line:direction") and class."""
    rows = await conn.fetch(
        """SELECT camera_id, lane AS line, vehicle_class, sum(count)::bigint AS vehicles
           FROM portal.vehicle_counts WHERE window_start >= $1 AND window_start < $2
           GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""", start, end)
    return [dict(r) for r in rows]


async def gather(conn: asyncpg.Connection, scope: Scope, start: datetime, end: datetime, tz: str,
                 deadlines: Deadlines, now: datetime) -> ReportData:
    data = ReportData(scope=scope, start=start, end=end, generated_at=now.astimezone(zoneinfo.ZoneInfo(tz)),
                      timezone=tz, deadlines=deadlines)
    communes = scope.communes
    if "violations" in scope.sections:
        data.by_type = await violations_by(conn, "type", start, end, tz, communes)
        data.by_camera = await violations_by(conn, "camera", start, end, tz, communes)
        data.by_hour = await violations_by(conn, "hour", start, end, tz, communes)
        data.by_vehicle_class = await violations_by(conn, "vehicle_class", start, end, tz, communes)
    if "deadlines" in scope.sections:
        data.notice_deadline = await notice_deadline(conn, start, end, deadlines.notice_within_days, communes)
        data.resolution_deadline = await resolution_deadline(conn, start, end, deadlines.warning_after_days, communes)
        data.notices_by_channel = await notices_by_channel(conn, start, end, deadlines.notice_within_days, communes)
    if "incidents" in scope.sections:
        data.incidents = await report_incidents.summary(conn, start, end)
    if "uptime" in scope.sections:
        until = data.uptime_until
        changes = [uptime.Change(r["camera_id"], r["occurred_at"], r["state"], r["reason"])
                   for r in await store.camera_changes(conn, start, until)]
        data.uptime_days = uptime.daily(changes, start, until, tz)
        data.uptime_cameras = uptime.per_camera(data.uptime_days)
        data.outages = uptime.outages(changes, start, until)
    if "traffic" in scope.sections:
        data.traffic = await traffic(conn, start, end)
    return data
