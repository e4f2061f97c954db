"""The notify schema's SQL. Exactly-once lives here: unique keys make a repeated decision insert
nothing, a lease lets one replica at a time send a notice, and events are written in the same
transaction as the state change that causes them (outbox)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

import asyncpg
import msgspec

from proto import codec
from proto.v1 import CaseReviewed, Owner, Vehicle
from services.notify.config import Subscriber, subject_matches

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


async def record_case(pool: asyncpg.Pool, case: CaseReviewed, vehicle: Vehicle, owner: Owner,
                      planned: Sequence[Planned], documents: dict[str, tuple[str, bytes]],
                      respond_by: datetime, now: datetime) -> int:
    """Store the case, its letters and the notices it needs in one transaction; returns how
    many notices are new (0 on a redelivery, or when the case was resolved in the meantime)."""
    async with pool.acquire() as conn, conn.transaction():
        await lock_case(conn, case.case_id)
        early = await conn.fetchval("SELECT received_at FROM notify.early_resolutions WHERE case_id = $1",
                                    case.case_id)
        await conn.execute(
            "INSERT INTO notify.cases (case_id, camera_id, agency, reviewed, vehicle, owner, created_at, status, "
            "resolved_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (case_id) DO NOTHING",
            case.case_id, case.camera_id, case.agency, _json(case), _json(vehicle), _json(owner), now,
            "open" if early is None else "resolved", early)
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
            "INSERT INTO notify.notices (notice_id, case_id, kind, channel, recipient, transport, address, secret_env, "
            "document_sha256, respond_by, next_attempt_at, created_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) ON CONFLICT DO NOTHING",
            notice.notice_id, notice.case_id, notice.kind, notice.channel, notice.recipient, notice.transport,
            notice.address, notice.secret_env, sha256, respond_by if notice.kind == "owner_notice" else None, now)
        inserted += status.endswith(" 1")
    return inserted


class Claimed(msgspec.Struct, frozen=True, kw_only=True):
    """A notice one replica holds the lease on, with what it needs to send it."""

    notice_id: str
    case_id: str
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
    case: CaseReviewed
    vehicle: Vehicle
    owner: Owner
    warned_since: datetime | None = None


CLAIM = """
WITH due AS (
    SELECT notice_id FROM notify.notices
    WHERE (status = 'pending' AND next_attempt_at <= $1) OR (status = 'sending' AND lease_until <= $1)
    ORDER BY next_attempt_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE notify.notices n SET status = 'sending', attempts = n.attempts + 1, lease_until = $3
    FROM due WHERE n.notice_id = due.notice_id
    RETURNING n.*
)
SELECT claimed.*, c.camera_id, c.reviewed, c.vehicle, c.owner, d.content AS document,
       (SELECT min(w.sent_at) FROM notify.notices w
        WHERE w.case_id = claimed.case_id AND w.kind = 'inspection_warning' AND w.status = 'sent') AS warned_since
FROM claimed
JOIN notify.cases c ON c.case_id = claimed.case_id
LEFT JOIN notify.documents d ON d.sha256 = claimed.document_sha256
"""


async def claim(pool: asyncpg.Pool, now: datetime, limit: int, lease_s: float) -> list[Claimed]:
    """Take due notices (and ones whose sender died: lease expired) for this replica."""
    rows = await pool.fetch(CLAIM, now, limit, now + timedelta(seconds=lease_s))
    return [Claimed(
        notice_id=row["notice_id"], case_id=row["case_id"], camera_id=row["camera_id"], kind=row["kind"],
        channel=row["channel"], recipient=row["recipient"], transport=row["transport"], address=row["address"],
        secret_env=row["secret_env"], document_sha256=row["document_sha256"], document=row["document"],
        respond_by=row["respond_by"], attempts=row["attempts"], created_at=row["created_at"],
        case=codec.decode(row["reviewed"].encode(), CaseReviewed), vehicle=codec.decode(row["vehicle"].encode(), Vehicle),
        owner=codec.decode(row["owner"].encode(), Owner), warned_since=row["warned_since"],
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


async def mark_sent(pool: asyncpg.Pool, notice: Claimed, now: datetime, subject: str, event: msgspec.Struct,
                    subscribers: Sequence[Subscriber], warning_due: datetime | None) -> bool:
    """Record a delivery; returns False when another replica already recorded it (lease lost)."""
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
        await add_event(conn, subject, event, now, subscribers)
        return True


async def mark_failed(pool: asyncpg.Pool, notice: Claimed, now: datetime, error: str, retry_at: datetime | None,
                      subject: str, event: msgspec.Struct, subscribers: Sequence[Subscriber]) -> bool:
    async with pool.acquire() as conn, conn.transaction():
        status = await conn.execute(
            "UPDATE notify.notices SET status = $2, next_attempt_at = coalesce($3, next_attempt_at), "
            "lease_until = NULL, last_error = $4 WHERE notice_id = $1 AND status = 'sending' AND attempts = $5",
            notice.notice_id, "pending" if retry_at else "failed", retry_at, error[:2000], notice.attempts)
        if not status.endswith(" 1"):
            return False
        await add_event(conn, subject, event, now, subscribers)
        return True


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
