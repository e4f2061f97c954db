"""SQL of the portal schema (migrations/003_portal.sql and later); every function takes a connection so
that the caller decides the transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

CASE_COLUMNS = (
    "case_id, violation_id, camera_id, violation_type, violation_at, detected_at, latitude, longitude, address, "
    "place_commune, vehicle_class, vehicle_colour, measurement, rule, plate_read, plate_confidence, "
    "plate_alternatives, plate, plate_key, plate_corrected, plate_colour, vehicle_type, brand, colour, "
    "inspection_status, match, mismatches, unidentified_reason, owner_commune, evidence, state, reviewer, "
    "reviewer_agency, reviewed_at, reject_reason, notified_at, respond_by, warned_at, resolved_at, resolution, "
    "created_at, updated_at, duplicate_of, merged_into, merged_by, merged_at, distinct_from, notice_hold, "
    "notice_hold_detail, plate_class_override, appeal_lodged_at, appeal_note"
)
OWNER_COLUMNS = ("kind", "name", "national_id", "address", "commune_code", "province", "phone", "email")
JSON_COLUMNS = {"measurement", "plate_alternatives", "evidence"}


class TransitionRefused(Exception):
    """The database refused a change of state (portal.case_transitions): HTTP 409."""


def _refused(exc: asyncpg.PostgresError) -> bool:
    return getattr(exc, "sqlstate", None) == "RW409"


async def insert_case(conn: asyncpg.Connection, row: dict[str, Any], owner: dict[str, Any] | None,
                      timezone_name: str) -> str | None:
    """Insert a new case numbered CASE-<year>-<n>; None when the violation already has one
    (a redelivery or replay)."""
    columns = list(row)
    values = [f"${i + 2}::jsonb" if c in JSON_COLUMNS else f"${i + 2}" for i, c in enumerate(columns)]
    violation_at = columns.index("violation_at") + 2
    sql = (
        f"INSERT INTO portal.cases (case_id, {', '.join(columns)}) VALUES ("
        f"'CASE-' || to_char(${violation_at} AT TIME ZONE $1, 'YYYY') || '-' || "
        # At least six digits; lpad alone would cut a seventh and reuse case numbers silently.
        f"(SELECT lpad(n::text, greatest(6, length(n::text)), '0') FROM nextval('portal.case_number') AS n), "
        f"{', '.join(values)}) "
        "ON CONFLICT DO NOTHING RETURNING case_id"
    )
    case_id = await conn.fetchval(sql, timezone_name, *row.values())
    if case_id is not None and owner is not None:
        await conn.execute(
            f"INSERT INTO portal.owners (case_id, {', '.join(OWNER_COLUMNS)}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            case_id, *(owner[c] for c in OWNER_COLUMNS))
    return case_id


# An open case of the same event: same plate and violation type, within the window in time and
# the radius in space (equirectangular distance: exact enough at a few hundred metres). Open: still
# in the workflow and not merged, rejected or resolved.
SAME_EVENT = """
SELECT case_id FROM portal.cases
WHERE plate_key = $1 AND plate_key <> '' AND violation_type = $2 AND case_id <> $3
  AND state IN ('identified', 'unidentified', 'confirmed', 'notified', 'warned')
  AND violation_at BETWEEN $4::timestamptz - make_interval(secs => $7::float8)
                       AND $4::timestamptz + make_interval(secs => $7::float8)
  AND 6371000 * sqrt(power(radians(latitude - $5::float8), 2)
                     + power(radians(longitude - $6::float8) * cos(radians(($5::float8 + latitude) / 2)), 2)) <= $8::float8
ORDER BY violation_at, case_id LIMIT 20
"""


async def same_event(conn: asyncpg.Connection, case: dict[str, Any], window_s: float, radius_m: float,
                     exclude: list[str] | None = None) -> str | None:
    """The earliest open case this one may repeat, if any (none of `exclude`)."""
    rows = await conn.fetch(SAME_EVENT, case["plate_key"], case["violation_type"],
                            case["case_id"], case["violation_at"], case["latitude"], case["longitude"], window_s,
                            radius_m)
    return next((r["case_id"] for r in rows if r["case_id"] not in (exclude or [])), None)


async def lock_plate(conn: asyncpg.Connection, plate_key: str) -> None:
    """Serialise opening cases of one plate (until the transaction ends), so that two replicas
    opening two copies of one event at once still see each other."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))", "case-plate:" + plate_key)


async def get_case(conn: asyncpg.Connection, case_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {CASE_COLUMNS} FROM portal.cases WHERE case_id = $1"
                              + (" FOR UPDATE" if lock else ""), case_id)
    return dict(row) if row else None


async def list_cases(conn: asyncpg.Connection, *, states: list[str] | None = None, communes: list[str] | None = None,
                     plate_key: str | None = None, camera_id: str | None = None, limit: int = 50,
                     offset: int = 0, oldest_first: bool = False) -> tuple[list[dict[str, Any]], int]:
    where, args = ["true"], []
    if states:
        args.append(states)
        where.append(f"state = ANY(${len(args)})")
    if communes is not None:
        args.append(communes)
        where.append(f"owner_commune = ANY(${len(args)})")
    if plate_key:
        args.append(plate_key)
        where.append(f"plate_key = ${len(args)}")
    if camera_id:
        args.append(camera_id)
        where.append(f"camera_id = ${len(args)}")
    condition = " AND ".join(where)
    total = await conn.fetchval(f"SELECT count(*) FROM portal.cases WHERE {condition}", *args)
    order = "violation_at ASC, case_id" if oldest_first else "violation_at DESC, case_id"
    rows = await conn.fetch(
        f"SELECT {CASE_COLUMNS} FROM portal.cases WHERE {condition} ORDER BY {order} "
        f"LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}", *args, limit, offset)
    return [dict(r) for r in rows], total


async def get_owner(conn: asyncpg.Connection, case_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {', '.join(OWNER_COLUMNS)} FROM portal.owners WHERE case_id = $1", case_id)
    return dict(row) if row else None


async def insert_owner(conn: asyncpg.Connection, case_id: str, owner: dict[str, Any]) -> None:
    await conn.execute(
        f"INSERT INTO portal.owners (case_id, {', '.join(OWNER_COLUMNS)}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        case_id, *(owner[c] for c in OWNER_COLUMNS))


async def forget_owner(conn: asyncpg.Connection, case_id: str) -> bool:
    """Drop the owner of a plate the officer found misread: that person has nothing to do with
    the case, and their data should not stay attached to it."""
    return await conn.fetchval("DELETE FROM portal.owners WHERE case_id = $1 RETURNING true", case_id) is True


async def history(conn: asyncpg.Connection, case_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT from_state, to_state, at FROM portal.case_history WHERE case_id = $1 ORDER BY id",
                            case_id)
    return [dict(r) for r in rows]


async def next_in_queue(conn: asyncpg.Connection, after_case: str | None) -> str | None:
    """The oldest case awaiting review other than the one just decided."""
    return await conn.fetchval(
        "SELECT case_id FROM portal.cases WHERE state IN ('identified', 'unidentified') AND case_id <> $1 "
        "ORDER BY violation_at, case_id LIMIT 1", after_case or "")


async def update_case(conn: asyncpg.Connection, case_id: str, **columns: Any) -> None:
    """Change columns (incl. state); raises TransitionRefused when the state machine says no."""
    sets = ", ".join(f"{name} = ${i + 2}" for i, name in enumerate(columns))
    try:
        await conn.execute(f"UPDATE portal.cases SET {sets} WHERE case_id = $1", case_id, *columns.values())
    except asyncpg.PostgresError as exc:
        if _refused(exc):
            raise TransitionRefused(str(exc)) from exc
        raise


async def record_notice(conn: asyncpg.Connection, *, event_id: str, case_id: str, notice_id: str, kind: str,
                        channel: str, outcome: str, recipient: str = "", reason: str = "",
                        occurred_at: datetime, respond_by: datetime | None = None) -> bool:
    """False when this event was recorded before (a redelivery)."""
    return await conn.fetchval(
        "INSERT INTO portal.notices (event_id, case_id, notice_id, kind, channel, outcome, recipient, reason, "
        "occurred_at, respond_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
        "ON CONFLICT (event_id) DO NOTHING RETURNING true",
        event_id, case_id, notice_id, kind, channel, outcome, recipient, reason, occurred_at, respond_by) is True


async def notices(conn: asyncpg.Connection, case_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT notice_id, kind, channel, outcome, recipient, reason, occurred_at, respond_by "
                            "FROM portal.notices WHERE case_id = $1 ORDER BY occurred_at", case_id)
    return [dict(r) for r in rows]


# --- outbox -------------------------------------------------------------------------------------------
async def outbox_add(conn: asyncpg.Connection, event_id: str, subject: str, payload: bytes) -> None:
    await conn.execute("INSERT INTO portal.outbox (event_id, subject, payload) VALUES ($1, $2, $3) "
                       "ON CONFLICT (event_id) DO NOTHING", event_id, subject, payload)


async def outbox_pending(conn: asyncpg.Connection, older_than_s: float, limit: int = 100) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT event_id, subject, payload FROM portal.outbox WHERE published_at IS NULL "
        "AND created_at < now() - make_interval(secs => $1) ORDER BY created_at LIMIT $2", older_than_s, limit)


async def outbox_done(conn: asyncpg.Connection, event_id: str) -> None:
    await conn.execute("UPDATE portal.outbox SET published_at = now() WHERE event_id = $1", event_id)


async def outbox_count(conn: asyncpg.Connection) -> int:
    return await conn.fetchval("SELECT count(*) FROM portal.outbox WHERE published_at IS NULL")


# --- telemetry ----------------------------------------------------------------------------------------
async def record_counts(conn: asyncpg.Connection, *, event_id: str, camera_id: str, window_start: datetime,
                        window_end: datetime, counts: list[tuple[str, str, int]]) -> None:
    await conn.executemany(
        "INSERT INTO portal.vehicle_counts (event_id, camera_id, window_start, window_end, vehicle_class, lane, count) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        [(event_id, camera_id, window_start, window_end, cls, lane, n) for cls, lane, n in counts])


async def record_camera_status(conn: asyncpg.Connection, status: Any) -> None:
    """Keep the latest report per camera (an older one arriving late is ignored); the live board hears of it."""
    changed = await conn.fetchval(
        """INSERT INTO portal.camera_health AS h (camera_id, state, reason, occurred_at, state_since, fps_in, fps_out,
               frames_dropped, decode_errors, reconnects, last_frame_age_s, changes)
           VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8, $9, $10, 0)
           ON CONFLICT (camera_id) DO UPDATE SET
               state = EXCLUDED.state, reason = EXCLUDED.reason, occurred_at = EXCLUDED.occurred_at,
               state_since = CASE WHEN h.state = EXCLUDED.state THEN h.state_since ELSE EXCLUDED.occurred_at END,
               changes = h.changes + CASE WHEN h.state = EXCLUDED.state THEN 0 ELSE 1 END,
               fps_in = EXCLUDED.fps_in, fps_out = EXCLUDED.fps_out, frames_dropped = EXCLUDED.frames_dropped,
               decode_errors = EXCLUDED.decode_errors, reconnects = EXCLUDED.reconnects,
               last_frame_age_s = EXCLUDED.last_frame_age_s
           WHERE h.occurred_at <= EXCLUDED.occurred_at
           RETURNING true""",
        status.camera_id, status.state, status.reason, status.occurred_at, status.fps_in, status.fps_out,
        status.frames_dropped, status.decode_errors, status.reconnects, status.last_frame_age_s)
    if changed:
        await notify_board(conn, "camera", status.camera_id)


async def record_camera_change(conn: asyncpg.Connection, status: Any, event_id: str) -> bool:
    """Keep the report in the camera's history when its state differs from the state before it in
    time (a heartbeat repeating the state adds nothing); True when a row was added."""
    return await conn.fetchval(
        """INSERT INTO portal.camera_state_changes (camera_id, occurred_at, state, reason, event_id)
           SELECT $1, $2, $3, $4, $5
           WHERE NOT EXISTS (
               SELECT 1 FROM (SELECT state FROM portal.camera_state_changes
                              WHERE camera_id = $1 AND occurred_at <= $2
                              ORDER BY occurred_at DESC LIMIT 1) AS prev
               WHERE prev.state = $3)
           ON CONFLICT DO NOTHING RETURNING true""",
        status.camera_id, status.occurred_at, status.state, status.reason, event_id) is True


async def camera_changes(conn: asyncpg.Connection, start: datetime, end: datetime,
                         camera_ids: list[str] | None = None) -> list[dict[str, Any]]:
    """Every change in [start, end) and, per camera, the last one before `start` (the state the
    period began in)."""
    rows = await conn.fetch(
        """(SELECT camera_id, occurred_at, state, reason FROM portal.camera_state_changes
            WHERE occurred_at >= $1 AND occurred_at < $2 AND ($3::text[] IS NULL OR camera_id = ANY($3)))
           UNION ALL
           (SELECT DISTINCT ON (camera_id) camera_id, occurred_at, state, reason FROM portal.camera_state_changes
            WHERE occurred_at < $1 AND ($3::text[] IS NULL OR camera_id = ANY($3))
            ORDER BY camera_id, occurred_at DESC)
           ORDER BY camera_id, occurred_at""", start, end, camera_ids)
    return [dict(r) for r in rows]


# --- statistics ---------------------------------------------------------------------------------------
GROUPS = {"type": "violation_type", "camera": "camera_id",
          "day": "to_char(violation_at AT TIME ZONE $3, 'YYYY-MM-DD')"}


async def violations_by(conn: asyncpg.Connection, group: str, start: datetime, end: datetime,
                        timezone_name: str) -> list[dict[str, Any]]:
    """Counts of cases by type, camera or local day, with how many were confirmed and rejected.
    A case merged into another is the same violation: counted once, as the case it joined."""
    key = GROUPS[group]
    rows = await conn.fetch(
        f"""SELECT {key} AS key, count(*) AS total,
                   count(*) FILTER (WHERE state IN ('confirmed', 'notified', 'warned', 'resolved')) AS confirmed,
                   count(*) FILTER (WHERE state = 'rejected') AS rejected,
                   count(*) FILTER (WHERE state IN ('identified', 'unidentified')) AS awaiting_review
            FROM portal.cases WHERE violation_at >= $1 AND violation_at < $2 AND state <> 'merged'
                 {'' if group == 'day' else 'AND $3::text IS NOT NULL'}
            GROUP BY 1 ORDER BY 1""", start, end, timezone_name)
    return [dict(r) for r in rows]


async def counts_by(conn: asyncpg.Connection, start: datetime, end: datetime, timezone_name: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT camera_id, to_char(window_start AT TIME ZONE $3, 'YYYY-MM-DD') AS day, vehicle_class,
                  sum(count)::bigint AS vehicles
           FROM portal.vehicle_counts WHERE window_start >= $1 AND window_start < $2
           GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""", start, end, timezone_name)
    return [dict(r) for r in rows]


async def cameras(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT camera_id, state, reason, occurred_at, state_since, fps_in, fps_out, frames_dropped, decode_errors, "
        "reconnects, last_frame_age_s, changes FROM portal.camera_health ORDER BY camera_id")
    return [dict(r) for r in rows]


async def inspection_holds(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT case_id, plate, plate_colour, vehicle_type, violation_type, violation_at, warned_at "
        "FROM portal.cases WHERE state = 'warned' ORDER BY warned_at")
    return [dict(r) for r in rows]


async def audit_rows(conn: asyncpg.Connection, limit: int) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT seq, at, user_id, agency, role, action, object, purpose, client, hash "
                            "FROM portal.audit ORDER BY seq DESC LIMIT $1", limit)
    return [dict(r) for r in rows]


# --- incidents (migrations/006_incidents.sql; the folding rules are in incidents.py) -----------------
INCIDENT_COLUMNS = (
    "incident_id, camera_id, type, severity, detected, latitude, longitude, address, lane, zone, occurred_at, "
    "detected_at, updated_at, cleared_at, clear_reason, duration_s, track_ids, vehicle_class, traffic, parameters, "
    "evidence, evidence_status, last_change, acknowledged_at, acknowledged_by, acknowledge_note, closed_at, closed_by, "
    "close_note, last_event_id, created_at, changed_at"
)
INCIDENT_JSON = {"traffic", "parameters", "evidence"}
BOARD_CHANNEL = "portal_board"  # NOTIFY channel: every replica's board streams hear every change


async def notify_board(conn: asyncpg.Connection, kind: str, key: str) -> None:
    """Tell every replica's live board that `key` (an incident id, a camera id) changed; sent by
    PostgreSQL when the transaction commits, never for a change rolled back."""
    await conn.execute("SELECT pg_notify($1, $2)", BOARD_CHANNEL, f"{kind}:{key}")


async def apply_incident(conn: asyncpg.Connection, kind: str, event_id: str, occurred_at: datetime,
                         opening: dict[str, Any], fold) -> bool:
    """Apply one incident event in the caller's transaction; False when it was applied before.

    The row is opened by whichever event of the incident comes first (`opening`), locked, and
    `fold(row)` says which columns this event changes (incidents.changes)."""
    incident_id = opening["incident_id"]
    await conn.execute(
        "INSERT INTO portal.incidents (incident_id, camera_id, type, last_event_id) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (incident_id) DO NOTHING",
        incident_id, opening["camera_id"], opening["type"], opening["last_event_id"])
    fresh = await conn.fetchval(
        "INSERT INTO portal.incident_events (event_id, incident_id, kind, occurred_at) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (event_id) DO NOTHING RETURNING true", event_id, incident_id, kind, occurred_at)
    if not fresh:
        return False
    row = await conn.fetchrow(f"SELECT {INCIDENT_COLUMNS} FROM portal.incidents WHERE incident_id = $1 FOR UPDATE",
                              incident_id)
    columns = fold(dict(row))
    sets = ", ".join(f"{name} = ${i + 2}{'::jsonb' if name in INCIDENT_JSON else ''}"
                     for i, name in enumerate(columns))
    await conn.execute(f"UPDATE portal.incidents SET {sets}, changed_at = now() WHERE incident_id = $1",
                       incident_id, *columns.values())
    await notify_board(conn, "incident", incident_id)
    return True


async def get_incident(conn: asyncpg.Connection, incident_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {INCIDENT_COLUMNS} FROM portal.incidents WHERE incident_id = $1"
                              + (" FOR UPDATE" if lock else ""), incident_id)
    return dict(row) if row else None


async def list_incidents(conn: asyncpg.Connection, *, open_only: bool = True, camera_id: str | None = None,
                         limit: int = 200) -> list[dict[str, Any]]:
    """Incidents not closed by an operator (open_only), newest change first."""
    where, args = ["true"], []
    if open_only:
        where.append("closed_at IS NULL")
    if camera_id:
        args.append(camera_id)
        where.append(f"camera_id = ${len(args)}")
    rows = await conn.fetch(
        f"SELECT {INCIDENT_COLUMNS} FROM portal.incidents WHERE {' AND '.join(where)} "
        f"ORDER BY (cleared_at IS NULL) DESC, coalesce(detected_at, updated_at, created_at) DESC, incident_id "
        f"LIMIT ${len(args) + 1}", *args, limit)
    return [dict(r) for r in rows]


async def _operator_change(conn: asyncpg.Connection, sql: str, incident_id: str, *args: Any) -> bool:
    """An operator's UPDATE of one incident (`... RETURNING true`); a change is announced to the boards."""
    done = await conn.fetchval(sql, incident_id, *args)
    if done:
        await notify_board(conn, "incident", incident_id)
    return done is True


async def acknowledge_incident(conn: asyncpg.Connection, incident_id: str, *, user_id: str, note: str,
                               at: datetime) -> bool:
    """False when it is already acknowledged or closed (the first operator's acknowledgement stands)."""
    return await _operator_change(
        conn, "UPDATE portal.incidents SET acknowledged_at = $2, acknowledged_by = $3, acknowledge_note = $4, "
        "changed_at = now() WHERE incident_id = $1 AND acknowledged_at IS NULL AND closed_at IS NULL RETURNING true",
        incident_id, at, user_id, note)


async def close_incident(conn: asyncpg.Connection, incident_id: str, *, user_id: str, note: str, at: datetime) -> bool:
    """False when it is already closed. Closing acknowledges too, if nobody had."""
    return await _operator_change(
        conn, "UPDATE portal.incidents SET closed_at = $2, closed_by = $3, close_note = $4, "
        "acknowledged_at = coalesce(acknowledged_at, $2), acknowledged_by = coalesce(acknowledged_by, $3), "
        "changed_at = now() WHERE incident_id = $1 AND closed_at IS NULL RETURNING true",
        incident_id, at, user_id, note)


# --- signal phases ----------------------------------------------------------------------------------
async def record_signal_phase(conn: asyncpg.Connection, phase: Any) -> bool:
    """Keep the newest phase per head (an older one arriving late is ignored); True when it changed."""
    changed = await conn.fetchval(
        """INSERT INTO portal.signal_phases AS s (intersection_id, head, camera_id, phase, source, occurred_at, phase_since)
           VALUES ($1, $2, $3, $4, $5, $6, $6)
           ON CONFLICT (intersection_id, head) DO UPDATE SET
               camera_id = EXCLUDED.camera_id, phase = EXCLUDED.phase, source = EXCLUDED.source,
               occurred_at = EXCLUDED.occurred_at,
               phase_since = CASE WHEN s.phase = EXCLUDED.phase THEN s.phase_since ELSE EXCLUDED.occurred_at END
           WHERE s.occurred_at < EXCLUDED.occurred_at
           RETURNING true""",
        phase.intersection_id, phase.head, phase.camera_id, phase.phase, phase.source, phase.occurred_at)
    if changed and phase.camera_id:
        await notify_board(conn, "camera", phase.camera_id)
    return changed is True


async def signal_phases(conn: asyncpg.Connection, camera_id: str | None = None) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT intersection_id, head, camera_id, phase, source, occurred_at, phase_since "
                            "FROM portal.signal_phases WHERE $1::text IS NULL OR camera_id = $1 "
                            "ORDER BY intersection_id, head", camera_id)
    return [dict(r) for r in rows]
