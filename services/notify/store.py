"""The notify schema's SQL. Exactly-once lives here: unique keys make a repeated decision insert
nothing, a lease lets one replica at a time send a notice, and events are written in the same
transaction as the state change that causes them (outbox)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

import asyncpg
import msgspec

from proto import codec
from proto.v1 import CaseReviewed, Owner, Vehicle
from proto.v1.incident import IncidentCleared, IncidentDetected
from services.notify.config import DuplicateRule, Subscriber, subject_matches

# Failures to retry on the next poll: a PostgreSQL killed mid-query surfaces as any of these.
TRANSIENT = (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)
from services.notify.decisions import Planned


async def schema_present(pool: asyncpg.Pool) -> bool:
    return await pool.fetchval("SELECT to_regclass('notify.notices') IS NOT NULL")


def _json(value: msgspec.Struct) -> str:
    return codec.encode(value).decode("utf-8")


async def case_known(pool: asyncpg.Pool, case_id: str) -> bool:
    return await pool.fetchval("SELECT true FROM notify.cases WHERE case_id = $1", case_id) is not None


async def lock_case(conn: asyncpg.Connection, case_id: str) -> None:
    """Serialise recording and resolving one case across replicas (until the transaction ends),
    so that a resolution arriving during the owner lookup is seen by the recording."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 8))", case_id)


async def resolved_early(pool: asyncpg.Pool, case_id: str) -> bool:
    return await pool.fetchval("SELECT true FROM notify.early_resolutions WHERE case_id = $1", case_id) is not None


def plate_key(plate: str) -> str:
    """The bare [0-9A-Z] plate, as the portal compares plates (30A-123.45 → 30A12345)."""
    return re.sub(r"[^0-9A-Z]", "", (plate or "").upper().replace("Đ", "D"))


# An earlier case of the same event: same plate and violation type, within the window in time and
# the radius in space (equirectangular distance: exact enough at a few hundred metres).
SAME_EVENT = """
SELECT case_id FROM notify.cases
WHERE plate_key = $1 AND violation_type = $2 AND case_id <> $3 AND status IN ('open', 'resolved')
  AND violation_at BETWEEN $4::timestamptz - make_interval(secs => $7::float8)
                       AND $4::timestamptz + make_interval(secs => $7::float8)
  AND 6371000 * sqrt(power(radians(latitude - $5::float8), 2)
                     + power(radians(longitude - $6::float8) * cos(radians(($5::float8 + latitude) / 2)), 2)) <= $8::float8
  AND NOT (case_id = ANY($9::text[]))
ORDER BY violation_at, case_id LIMIT 1
"""


async def _insert_case(conn: asyncpg.Connection, case: CaseReviewed, vehicle: Vehicle, owner: Owner, now: datetime,
                       status: str, resolved_at: datetime | None = None, hold_reason: str | None = None,
                       hold_detail: str = "", duplicate_of: str | None = None) -> None:
    await conn.execute(
        "INSERT INTO notify.cases (case_id, camera_id, agency, reviewed, vehicle, owner, created_at, status, "
        "resolved_at, hold_reason, hold_detail, duplicate_of, plate_key, violation_type, violation_at, latitude, "
        "longitude) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) "
        "ON CONFLICT (case_id) DO NOTHING",
        case.case_id, case.camera_id, case.agency, _json(case), _json(vehicle), _json(owner), now, status,
        resolved_at, hold_reason, hold_detail, duplicate_of, plate_key(case.plate), case.violation_type,
        case.violation_at, case.location.latitude, case.location.longitude)


async def hold_case(pool: asyncpg.Pool, case: CaseReviewed, vehicle: Vehicle, owner: Owner, now: datetime, *,
                    reason: str, detail: str, subject: str, event: msgspec.Struct,
                    duplicate_of: str | None = None) -> bool:
    """Record a case that gets no notices, and its notice.held event; False when it was known."""
    async with pool.acquire() as conn, conn.transaction():
        await lock_case(conn, case.case_id)
        known = await conn.fetchval("SELECT status FROM notify.cases WHERE case_id = $1", case.case_id)
        if known is not None:
            await conn.execute(
                "UPDATE notify.cases SET hold_reason = $2, hold_detail = $3, duplicate_of = $4 "
                "WHERE case_id = $1 AND status = 'held'", case.case_id, reason, detail, duplicate_of)
            await add_event(conn, subject, event, now)
            return False
        await _insert_case(conn, case, vehicle, owner, now, "held", hold_reason=reason, hold_detail=detail,
                           duplicate_of=duplicate_of)
        await add_event(conn, subject, event, now)
        return True


async def held_duplicate(pool: asyncpg.Pool, case_id: str) -> tuple[str, Vehicle, Owner] | None:
    """(the earlier case, vehicle, owner) of a case held as a possible duplicate, else None."""
    row = await pool.fetchrow("SELECT duplicate_of, vehicle, owner FROM notify.cases WHERE case_id = $1 "
                              "AND status = 'held' AND hold_reason = 'possible_duplicate'", case_id)
    if row is None:
        return None
    return (row["duplicate_of"], codec.decode(row["vehicle"].encode(), Vehicle),
            codec.decode(row["owner"].encode(), Owner))


async def held_cases(pool: asyncpg.Pool, reason: str) -> list[tuple[CaseReviewed, Vehicle, Owner]]:
    rows = await pool.fetch("SELECT reviewed, vehicle, owner FROM notify.cases WHERE status = 'held' "
                            "AND hold_reason = $1 ORDER BY created_at", reason)
    return [(codec.decode(r["reviewed"].encode(), CaseReviewed), codec.decode(r["vehicle"].encode(), Vehicle),
             codec.decode(r["owner"].encode(), Owner)) for r in rows]


async def record_case(pool: asyncpg.Pool, case: CaseReviewed, vehicle: Vehicle, owner: Owner,
                      planned: Sequence[Planned], documents: dict[str, tuple[str, bytes]],
                      respond_by: datetime, now: datetime, *, duplicates: DuplicateRule | None = None,
                      on_duplicate=None) -> int | str:
    """Store the case, its letters and the notices it needs in one transaction; returns how
    many notices are new (0 on a redelivery, or when the case was resolved in the meantime), or
    the id of the earlier case of the same event, when there is one (the case is then held and
    `on_duplicate(earlier)` gives the notice.held (subject, event) recorded with it).

    The check and the insert are serialised per plate, so two replicas recording two copies of
    one event at once cannot both send."""
    async with pool.acquire() as conn, conn.transaction():
        await lock_case(conn, case.case_id)
        if duplicates is not None:
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 9))", "dup:" + plate_key(case.plate))
        early = await conn.fetchval("SELECT received_at FROM notify.early_resolutions WHERE case_id = $1",
                                    case.case_id)
        held = await conn.fetchval("SELECT true FROM notify.cases WHERE case_id = $1 AND status = 'held'",
                                   case.case_id)
        if duplicates is not None and early is None and plate_key(case.plate):
            earlier = await conn.fetchval(
                SAME_EVENT, plate_key(case.plate), case.violation_type, case.case_id, case.violation_at,
                case.location.latitude, case.location.longitude, duplicates.window_s, duplicates.radius_m,
                list(case.distinct_from))
            if earlier is not None:
                subject, event = on_duplicate(earlier)
                if held:
                    await conn.execute("UPDATE notify.cases SET hold_reason = 'possible_duplicate', duplicate_of = $2 "
                                       "WHERE case_id = $1", case.case_id, earlier)
                else:
                    await _insert_case(conn, case, vehicle, owner, now, "held", hold_reason="possible_duplicate",
                                       hold_detail=f"có thể trùng với {earlier}", duplicate_of=earlier)
                await add_event(conn, subject, event, now)
                return earlier
        if held:  # released: the configuration now has its legal basis, or the reviewer said distinct
            await conn.execute("UPDATE notify.cases SET status = $2, resolved_at = $3, hold_reason = NULL, "
                               "hold_detail = '', duplicate_of = NULL, vehicle = $4, owner = $5, reviewed = $6 "
                               "WHERE case_id = $1", case.case_id, "open" if early is None else "resolved", early,
                               _json(vehicle), _json(owner), _json(case))
        else:
            await _insert_case(conn, case, vehicle, owner, now, "open" if early is None else "resolved", early)
        if early is not None:
            return 0
        for sha256, content in documents.values():
            await conn.execute(
                "INSERT INTO notify.documents (sha256, content_type, content) VALUES ($1, 'application/pdf', $2) "
                "ON CONFLICT (sha256) DO NOTHING", sha256, content)
        return await insert_notices(conn, planned, documents, now, respond_by)


async def insert_notices(conn: asyncpg.Connection, planned: Iterable[Planned],
                         documents: dict[str, tuple[str, bytes]], now: datetime,
                         respond_by: datetime | None = None) -> int:
    inserted = 0
    for notice in planned:
        sha256 = documents[notice.document][0] if notice.document else None
        status = await conn.execute(
            "INSERT INTO notify.notices (notice_id, case_id, incident_id, kind, channel, recipient, transport, address, "
            "secret_env, document_sha256, respond_by, next_attempt_at, created_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) ON CONFLICT DO NOTHING",
            notice.notice_id, notice.case_id or None, notice.incident_id or None, notice.kind, notice.channel,
            notice.recipient, notice.transport, notice.address, notice.secret_env, sha256,
            respond_by if notice.kind == "owner_notice" else None, now)
        inserted += status.endswith(" 1")
    return inserted


class Claimed(msgspec.Struct, frozen=True, kw_only=True):
    """A notice one replica holds the lease on, with what it needs to send it: a case's (case,
    vehicle, owner) or an incident alert's (incident, and its end when it came)."""

    notice_id: str
    case_id: str  # "" for an incident alert
    camera_id: str
    kind: str
    channel: str
    recipient: str
    transport: str
    address: str
    secret_env: str
    document_sha256: str | None
    document: bytes | None
    respond_by: datetime | None
    attempts: int
    created_at: datetime
    case: CaseReviewed | None = None
    vehicle: Vehicle | None = None
    owner: Owner | None = None
    warned_since: datetime | None = None
    incident_id: str = ""
    incident: IncidentDetected | None = None
    cleared: IncidentCleared | None = None


def leased(table: str, key: str, busy: str) -> str:
    """SQL (a WITH clause) taking due rows of `table` for this replica: those pending and due at $1,
    or `busy` with an expired lease (the replica that took them died), oldest first, at most $2,
    skipping rows another replica holds; `claimed` is them, now `busy`, attempts + 1, leased until $3."""
    return f"""
WITH due AS (
    SELECT {key} FROM {table}
    WHERE (status = 'pending' AND next_attempt_at <= $1) OR (status = '{busy}' AND lease_until <= $1)
    ORDER BY next_attempt_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE {table} t SET status = '{busy}', attempts = t.attempts + 1, lease_until = $3
    FROM due WHERE t.{key} = due.{key}
    RETURNING t.*
)"""


CLAIM = leased("notify.notices", "notice_id", "sending") + """
SELECT claimed.*, coalesce(c.camera_id, i.camera_id) AS camera_id, c.reviewed, c.vehicle, c.owner,
       i.detected, i.cleared, d.content AS document,
       (SELECT min(w.sent_at) FROM notify.notices w
        WHERE w.case_id = claimed.case_id AND w.kind = 'inspection_warning' AND w.status = 'sent') AS warned_since
FROM claimed
LEFT JOIN notify.cases c ON c.case_id = claimed.case_id
LEFT JOIN notify.incidents i ON i.incident_id = claimed.incident_id
LEFT JOIN notify.documents d ON d.sha256 = claimed.document_sha256
"""


async def claim(pool: asyncpg.Pool, now: datetime, limit: int, lease_s: float) -> list[Claimed]:
    """Take due notices (and ones whose sender died: lease expired) for this replica."""
    rows = await pool.fetch(CLAIM, now, limit, now + timedelta(seconds=lease_s))

    def decoded(value: str | None, type_):
        return None if value is None else codec.decode(value.encode(), type_)

    return [Claimed(
        notice_id=row["notice_id"], case_id=row["case_id"] or "", camera_id=row["camera_id"], kind=row["kind"],
        channel=row["channel"], recipient=row["recipient"], transport=row["transport"], address=row["address"],
        secret_env=row["secret_env"], document_sha256=row["document_sha256"], document=row["document"],
        respond_by=row["respond_by"], attempts=row["attempts"], created_at=row["created_at"],
        case=decoded(row["reviewed"], CaseReviewed), vehicle=decoded(row["vehicle"], Vehicle),
        owner=decoded(row["owner"], Owner), warned_since=row["warned_since"], incident_id=row["incident_id"] or "",
        incident=decoded(row["detected"], IncidentDetected), cleared=decoded(row["cleared"], IncidentCleared),
    ) for row in rows]


async def add_event(conn: asyncpg.Connection, subject: str, event: msgspec.Struct, now: datetime,
                    subscribers: Sequence[Subscriber] = ()) -> None:
    """Queue an event for publishing, and for every subscriber whose subjects match, a webhook."""
    payload = codec.encode(event)
    event_id = getattr(event, "id")
    await conn.execute(
        "INSERT INTO notify.outbox (event_id, subject, payload, created_at) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (event_id) DO NOTHING", event_id, subject, payload, now)
    for subscriber in subscribers:
        if any(subject_matches(pattern, subject) for pattern in subscriber.subjects):
            await conn.execute(
                "INSERT INTO notify.webhook_deliveries (subscriber, event_id, subject, url, secret_env, body, "
                "next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) "
                "ON CONFLICT (subscriber, event_id) DO NOTHING",
                subscriber.name, event_id, subject, subscriber.url, subscriber.secret_env, payload, now)


async def mark_sent(pool: asyncpg.Pool, notice: Claimed, now: datetime, subject: str, event: msgspec.Struct | None,
                    subscribers: Sequence[Subscriber], warning_due: datetime | None) -> bool:
    """Record a delivery (and its event, if any); returns False when another replica already
    recorded it (lease lost)."""
    async with pool.acquire() as conn, conn.transaction():
        status = await conn.execute(
            "UPDATE notify.notices SET status = 'sent', sent_at = $2, lease_until = NULL, last_error = NULL "
            "WHERE notice_id = $1 AND status = 'sending' AND attempts = $3", notice.notice_id, now, notice.attempts)
        if not status.endswith(" 1"):
            return False
        if warning_due is not None:
            # The warning period runs from the first owner notice delivered; later channels keep it.
            await conn.execute(
                "INSERT INTO notify.deadlines (case_id, kind, due_at) SELECT $1, 'inspection_warning', $2 "
                "FROM notify.cases WHERE case_id = $1 AND status = 'open' ON CONFLICT DO NOTHING",
                notice.case_id, warning_due)
        if event is not None:
            await add_event(conn, subject, event, now, subscribers)
        return True


async def mark_failed(pool: asyncpg.Pool, notice: Claimed, now: datetime, error: str, retry_at: datetime | None,
                      subject: str, event: msgspec.Struct | None, subscribers: Sequence[Subscriber]) -> bool:
    async with pool.acquire() as conn, conn.transaction():
        status = await conn.execute(
            "UPDATE notify.notices SET status = $2, next_attempt_at = coalesce($3, next_attempt_at), "
            "lease_until = NULL, last_error = $4 WHERE notice_id = $1 AND status = 'sending' AND attempts = $5",
            notice.notice_id, "pending" if retry_at else "failed", retry_at, error[:2000], notice.attempts)
        if not status.endswith(" 1"):
            return False
        if event is not None:
            await add_event(conn, subject, event, now, subscribers)
        return True


# --- incidents --------------------------------------------------------------------------------
async def _lock_incident(conn: asyncpg.Connection, incident_id: str) -> asyncpg.Record | None:
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 10))", incident_id)
    return await conn.fetchrow("SELECT detected, cleared FROM notify.incidents WHERE incident_id = $1", incident_id)


async def record_incident(pool: asyncpg.Pool, incident: IncidentDetected, now: datetime,
                          alerts: Sequence[Planned], plan_cleared) -> int:
    """Store the incident and the alerts it owes in one transaction; returns how many are new
    (0 on a redelivery or a republished event). When its end came first (the two events are on
    different subjects), the end messages are planned with the alerts: `plan_cleared(incident)`."""
    async with pool.acquire() as conn, conn.transaction():
        row = await _lock_incident(conn, incident.incident_id)
        planned = list(alerts)
        if row is None:
            await conn.execute(
                "INSERT INTO notify.incidents (incident_id, camera_id, type, detected, received_at) "
                "VALUES ($1, $2, $3, $4, $5)", incident.incident_id, incident.camera_id, incident.type,
                _json(incident), now)
        else:
            if row["detected"] is None:
                await conn.execute("UPDATE notify.incidents SET detected = $2 WHERE incident_id = $1",
                                   incident.incident_id, _json(incident))
            else:
                # The first report is the one alerted on: a republished copy changes nothing.
                incident = codec.decode(row["detected"].encode(), IncidentDetected)
            if row["cleared"] is not None:
                planned += plan_cleared(incident)
        return await insert_notices(conn, planned, {}, now)


async def record_incident_cleared(pool: asyncpg.Pool, cleared: IncidentCleared, now: datetime, plan_cleared) -> int:
    """Store the end of an incident and the end messages owed for it (`plan_cleared(detected)`);
    an end without its detection is kept until the detection comes."""
    async with pool.acquire() as conn, conn.transaction():
        row = await _lock_incident(conn, cleared.incident_id)
        if row is None:
            await conn.execute(
                "INSERT INTO notify.incidents (incident_id, camera_id, type, cleared, received_at) "
                "VALUES ($1, $2, $3, $4, $5)", cleared.incident_id, cleared.camera_id, cleared.type, _json(cleared), now)
            return 0
        if row["cleared"] is None:
            await conn.execute("UPDATE notify.incidents SET cleared = $2 WHERE incident_id = $1",
                               cleared.incident_id, _json(cleared))
        if row["detected"] is None:
            return 0
        return await insert_notices(conn, plan_cleared(codec.decode(row["detected"].encode(), IncidentDetected)),
                                    {}, now)


# --- outbox -----------------------------------------------------------------------------------
async def unpublished(pool: asyncpg.Pool, limit: int) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT event_id, subject, payload FROM notify.outbox WHERE published_at IS NULL "
        "ORDER BY created_at LIMIT $1", limit)


async def mark_published(pool: asyncpg.Pool, event_ids: Sequence[str], now: datetime) -> None:
    await pool.execute("UPDATE notify.outbox SET published_at = $2 WHERE event_id = ANY($1::text[])",
                       list(event_ids), now)


async def counts(pool: asyncpg.Pool) -> dict[str, int]:
    """Notices by status, for the metrics gauge and the tests."""
    rows = await pool.fetch("SELECT status, count(*) AS n FROM notify.notices GROUP BY status")
    return {row["status"]: row["n"] for row in rows}
