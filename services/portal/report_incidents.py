"""Incidents and response times for the report, from `portal.incidents` when that table exists.

The operations board (a separate change) adds the table, with at least incident_id, camera_id,
type, detected_at, acknowledged_at and closed_at. Until it lands, `summary` returns None and the
report says there is no incident data; once it lands nothing here needs to change unless the
columns are named otherwise. Kept apart so that finishing it touches this file only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

INCIDENT_LABELS = {"stopped_vehicle": "Phương tiện dừng bất thường",
                   "pedestrian_on_carriageway": "Người đi bộ trên phần đường xe chạy",
                   "wrong_way_driving": "Phương tiện đi ngược chiều", "congestion": "Ùn tắc giao thông"}


@dataclass
class IncidentSummary:
    by_type: list[dict[str, Any]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(r["incidents"] for r in self.by_type)


async def table_exists(conn: asyncpg.Connection) -> bool:
    return await conn.fetchval("SELECT to_regclass('portal.incidents') IS NOT NULL")


async def summary(conn: asyncpg.Connection, start: datetime, end: datetime) -> IncidentSummary | None:
    """Per incident type: incidents detected in the period, acknowledged, closed, and the median
    and 90th percentile of the time to acknowledge and to close (seconds). None: no table."""
    if not await table_exists(conn):
        return None
    rows = await conn.fetch(
        """SELECT type AS key, count(*) AS incidents,
                  count(acknowledged_at) AS acknowledged, count(closed_at) AS closed,
                  percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM acknowledged_at - detected_at))
                      AS ack_median_s,
                  percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM acknowledged_at - detected_at))
                      AS ack_p90_s,
                  percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM closed_at - detected_at))
                      AS close_median_s
           FROM portal.incidents WHERE detected_at >= $1 AND detected_at < $2
           GROUP BY 1 ORDER BY 1""", start, end)
    return IncidentSummary(by_type=[dict(r) for r in rows])
