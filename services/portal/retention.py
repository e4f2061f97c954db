"""Retention per data class, and the purge job that applies it (`roadwatch portal purge`).

Data classes and their periods (settings, in days; 0 keeps forever):

- `rejected_evidence` (RETENTION_REJECTED_EVIDENCE_DAYS): the evidence images of a rejected
  case, counted from the rejection.
- `closed_evidence` (RETENTION_CLOSED_EVIDENCE_DAYS): the evidence images of a resolved or merged
  case, counted from its closing.
- `owner_snapshot` (RETENTION_OWNER_SNAPSHOT_DAYS): the owner's personal data copied into a case
  (name, national id, address, contacts), counted from the case's closing (rejected, resolved,
  merged).

Evidence is content-addressed: an image still referenced by a case that is not due is kept. The
case row itself stays (the decision is the record); its evidence references keep the SHA-256 of
what was there. Every purge writes a row to `portal.purges` and one audit line (action `purge`),
in the same transaction; the object store deletion comes after commit and a re-run repeats it
if it failed. The clock is a parameter, so tests move time instead of waiting.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import nats.js.errors

from services.portal import audit, metrics

log = logging.getLogger("portal")

CLOSED_AT = "coalesce(resolved_at, reviewed_at, updated_at)"
CLASSES = {
    "rejected_evidence": ("state = 'rejected'", "reviewed_at"),
    "closed_evidence": ("state IN ('resolved', 'merged')", CLOSED_AT),
    "owner_snapshot": ("state IN ('rejected', 'resolved', 'merged')", CLOSED_AT),
}


@dataclass(frozen=True)
class Policy:
    """Days to keep each data class after the case closes; 0 keeps it forever."""

    rejected_evidence: int
    closed_evidence: int
    owner_snapshot: int

    def days(self, data_class: str) -> int:
        return getattr(self, data_class)


@dataclass(frozen=True)
class Purged:
    data_class: str
    case_id: str
    object: str
    due_at: datetime


async def _due_cases(conn: asyncpg.Connection, data_class: str, days: int, now: datetime) -> list[dict[str, Any]]:
    where, closed = CLASSES[data_class]
    rows = await conn.fetch(
        f"SELECT case_id, evidence, {closed} AS closed_at FROM portal.cases "
        f"WHERE {where} AND {closed} <= $1 ORDER BY {closed}, case_id", now - timedelta(days=days))
    return [dict(r) for r in rows]


async def _shas_still_needed(conn: asyncpg.Connection, policy: Policy, now: datetime) -> set[str]:
    """Evidence referenced by any case whose evidence is not due (open cases, recent closings)."""
    due_clauses = []
    for data_class in ("rejected_evidence", "closed_evidence"):
        days = policy.days(data_class)
        if days:
            where, closed = CLASSES[data_class]
            due_clauses.append(f"({where} AND {closed} <= ${len(due_clauses) + 1})")
    args = [now - timedelta(days=policy.days(c)) for c in ("rejected_evidence", "closed_evidence") if policy.days(c)]
    not_due = f"NOT ({' OR '.join(due_clauses)})" if due_clauses else "true"
    rows = await conn.fetch(
        f"SELECT DISTINCT e->>'sha256' AS sha FROM portal.cases, jsonb_array_elements(evidence) e WHERE {not_due}", *args)
    return {r["sha"] for r in rows}


async def _record(conn: asyncpg.Connection, item: Purged, days: int, now: datetime) -> bool:
    """Write the purge row and its audit line; False when this object was purged before."""
    inserted = await conn.fetchval(
        "INSERT INTO portal.purges (data_class, object, case_id, due_at, purged_at) VALUES ($1, $2, $3, $4, $5) "
        "ON CONFLICT DO NOTHING RETURNING true", item.data_class, item.object, item.case_id, item.due_at, now)
    if not inserted:
        return False
    await audit.append(conn, user_id="retention", agency="system", role="system", action="purge",
                       object=f"{item.data_class}:{item.case_id}/{item.object}",
                       purpose=f"hết thời hạn lưu trữ {days} ngày (đến hạn {item.due_at.isoformat()})")
    metrics.AUDIT_ROWS.labels("purge").inc()
    metrics.PURGED.labels(item.data_class).inc()
    return True


async def purge(pool: asyncpg.Pool, evidence_store, policy: Policy, now: datetime) -> list[Purged]:
    """Purge everything due at `now`; returns what was purged in this run."""
    done: list[Purged] = []
    async with pool.acquire() as conn:
        needed = await _shas_still_needed(conn, policy, now)
        for data_class in ("rejected_evidence", "closed_evidence"):
            days = policy.days(data_class)
            if not days:
                continue
            for case in await _due_cases(conn, data_class, days, now):
                for ref in evidence_list(case["evidence"]):
                    sha = ref["sha256"]
                    if sha in needed:
                        continue  # the same image is evidence of a case that is not due
                    item = Purged(data_class, case["case_id"], sha, case["closed_at"] + timedelta(days=days))
                    async with conn.transaction():
                        fresh = await _record(conn, item, days, now)
                    await _delete_object(evidence_store, sha)  # also after an earlier failed delete
                    if fresh:
                        done.append(item)
        days = policy.owner_snapshot
        if days:
            for case in await _due_cases(conn, "owner_snapshot", days, now):
                item = Purged("owner_snapshot", case["case_id"], case["case_id"], case["closed_at"] + timedelta(days=days))
                async with conn.transaction():
                    deleted = await conn.fetchval("DELETE FROM portal.owners WHERE case_id = $1 RETURNING true",
                                                  case["case_id"])
                    if deleted and await _record(conn, item, days, now):
                        done.append(item)
    for item in done:
        log.info("purged", extra={"fields": {"class": item.data_class, "case": item.case_id, "object": item.object}})
    return done


def evidence_list(value: Any) -> list[dict[str, Any]]:
    import msgspec  # noqa: PLC0415

    return msgspec.json.decode(value) if isinstance(value, (str, bytes)) else list(value)


async def _delete_object(store, sha: str) -> None:
    try:
        await store.delete(sha)
    except (nats.js.errors.ObjectNotFoundError, nats.js.errors.NotFoundError, nats.js.errors.ObjectDeletedError):
        pass  # already gone


def policy_of(config) -> Policy:
    return Policy(rejected_evidence=config.retention_rejected_evidence_days,
                  closed_evidence=config.retention_closed_evidence_days,
                  owner_snapshot=config.retention_owner_snapshot_days)


async def run_once(config) -> int:
    """`roadwatch portal purge`: one pass at the current time."""
    from datetime import timezone  # noqa: PLC0415

    from services.runtime import bus, db  # noqa: PLC0415

    nc = await bus.connect(config.nats_url, "portal-purge")
    try:
        pool = await db.create_pool(config.database_url, max_size=2)
        try:
            store = await nc.jetstream().object_store(config.evidence_bucket)
            done = await purge(pool, store, policy_of(config), datetime.now(timezone.utc))
        finally:
            await pool.close()
    finally:
        await bus.drain(nc)
    counts: dict[str, int] = {}
    for item in done:
        counts[item.data_class] = counts.get(item.data_class, 0) + 1
    print("purged: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "nothing due"))
    return 0
