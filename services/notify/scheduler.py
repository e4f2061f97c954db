"""Legal deadlines that survive restarts. A deadline is a row (notify.deadlines) written when the
first owner notice is delivered; every replica's tick takes the due ones with FOR UPDATE SKIP
LOCKED, so each is handled once however many replicas run, and one that came due while notify
was down is handled at the first tick after it starts. The clock is a parameter, so the 20-day
rule is tested without waiting 20 days.

Resolution (case.resolved) closes the deadline and lifts a warning already sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

import asyncpg

from proto import codec
from proto.v1 import CaseResolved, Owner, Vehicle
from services.notify import decisions, metrics, store
from services.notify.config import Config

log = logging.getLogger("notify.scheduler")

DUE = """
SELECT d.case_id, c.status, c.vehicle, c.owner
FROM notify.deadlines d JOIN notify.cases c ON c.case_id = d.case_id
WHERE d.status = 'pending' AND d.kind = 'inspection_warning' AND d.due_at <= $1
ORDER BY d.due_at
LIMIT $2
FOR UPDATE OF d, c SKIP LOCKED
"""


async def tick(pool: asyncpg.Pool, config: Config, now: datetime, limit: int = 100) -> int:
    """Warn the inspection registry for every open case whose period has passed; returns how many
    deadlines were handled. Both rows are locked without waiting, so this never deadlocks with
    a resolution of the same case (that one simply runs first or after)."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(DUE, now, limit)
        for row in rows:
            if row["status"] == "open":
                vehicle = codec.decode(row["vehicle"].encode(), Vehicle)
                owner = codec.decode(row["owner"].encode(), Owner)
                planned = decisions.plan_inspection(row["case_id"], vehicle, owner, config, "inspection_warning")
                await store.insert_notices(conn, planned, {}, now)
                metrics.DEADLINES.labels("warned").inc()
            else:
                metrics.DEADLINES.labels("closed").inc()
            await conn.execute(
                "UPDATE notify.deadlines SET status = 'done', done_at = $2 WHERE case_id = $1 AND kind = 'inspection_warning'",
                row["case_id"], now)
    if rows:
        log.info("deadlines handled", extra={"fields": {"count": len(rows)}})
    return len(rows)


async def resolve(pool: asyncpg.Pool, config: Config, event: CaseResolved, now: datetime) -> int:
    """Close the case: cancel its deadline and what is not yet sent, lift warnings that went out.
    Returns the number of lifting notices queued. A repeated event changes nothing."""
    async with pool.acquire() as conn, conn.transaction():
        await store.lock_case(conn, event.case_id)
        row = await conn.fetchrow(
            "SELECT status, vehicle, owner, resolved_event_id FROM notify.cases WHERE case_id = $1 FOR UPDATE",
            event.case_id)
        if row is None:
            await conn.execute(
                "INSERT INTO notify.early_resolutions (case_id, event_id, received_at) VALUES ($1, $2, $3) "
                "ON CONFLICT (case_id) DO NOTHING", event.case_id, event.id, now)
            log.info("resolved before notify recorded the case", extra={"fields": {"case": event.case_id}})
            return 0
        if row["status"] == "resolved":
            return 0
        await conn.execute(
            "UPDATE notify.cases SET status = 'resolved', resolved_at = $2, resolved_event_id = $3 WHERE case_id = $1",
            event.case_id, now, event.id)
        await conn.execute(
            "UPDATE notify.deadlines SET status = 'cancelled', done_at = $2 WHERE case_id = $1 AND status = 'pending'",
            event.case_id, now)
        await conn.execute(
            "UPDATE notify.notices SET status = 'cancelled', last_error = 'case resolved before sending' "
            "WHERE case_id = $1 AND status = 'pending' AND kind <> 'inspection_lifted'", event.case_id)
        warned = {r["channel"] for r in await conn.fetch(
            "SELECT channel FROM notify.notices WHERE case_id = $1 AND kind = 'inspection_warning' "
            "AND status IN ('sent', 'sending')", event.case_id)}
        if not warned:
            return 0
        vehicle = codec.decode(row["vehicle"].encode(), Vehicle)
        owner = codec.decode(row["owner"].encode(), Owner)
        planned = [p for p in decisions.plan_inspection(event.case_id, vehicle, owner, config, "inspection_lifted")
                   if p.channel in warned]
        return await store.insert_notices(conn, planned, {}, now)


async def run(pool: asyncpg.Pool, config: Config, clock: Callable[[], datetime], stop: asyncio.Event,
              interval_s: float, on_work: Callable[[], None]) -> None:
    while not stop.is_set():
        try:
            if await tick(pool, config, clock()):
                on_work()
                continue
        except store.TRANSIENT as exc:
            log.warning("deadline tick failed; retrying", extra={"fields": {"error": repr(exc)}})
        try:
            await asyncio.wait_for(stop.wait(), interval_s)
        except asyncio.TimeoutError:
            pass
