"""Webhook deliveries to subscribed agency systems: claim due ones (lease, SKIP LOCKED), POST
signed, log every attempt, retry with exponential backoff, and after the configured attempts
mark the delivery dead and put a dead letter on traffic.dlq.notify, so nothing is dropped
without a trace. One delivery per (subscriber, event): a redelivered event is not sent again."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import aiohttp
import asyncpg

from proto import ids, subjects
from proto.v1 import DeadLetter
from services.notify import metrics, store, webhooks
from services.notify.config import Config
from services.notify.outcome import DeliveryError
from services.notify.sender import backoff

log = logging.getLogger("notify.webhooks")

CLAIM = store.leased("notify.webhook_deliveries", "delivery_id", "delivering") + """
SELECT delivery_id, subscriber, event_id, subject, url, secret_env, body, attempts FROM claimed
"""


async def tick(pool: asyncpg.Pool, config: Config, session: aiohttp.ClientSession, now: Callable[[], datetime],
               *, limit: int = 16, lease_s: float = 60.0, timeout_s: float = 15.0) -> int:
    started_at = now()
    rows = await pool.fetch(CLAIM, started_at, limit, started_at + timedelta(seconds=lease_s))
    await asyncio.gather(*(_deliver(pool, config, session, now, row, timeout_s) for row in rows))
    return len(rows)


async def _deliver(pool: asyncpg.Pool, config: Config, session: aiohttp.ClientSession,
                   now: Callable[[], datetime], row: asyncpg.Record, timeout_s: float) -> None:
    attempt = row["attempts"]
    started = time.perf_counter()
    status_code: int | None = None
    error: DeliveryError | None = None
    try:
        status_code = await webhooks.post(session, row["url"], config.secrets.get(row["secret_env"], ""),
                                          bytes(row["body"]), event_id=row["event_id"], subject=row["subject"],
                                          attempt=attempt, timeout_s=timeout_s)
    except DeliveryError as exc:
        error = exc
    duration_ms = (time.perf_counter() - started) * 1000
    at = now()
    dead = error is not None and (error.permanent or attempt >= config.webhook_retry.attempts)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO notify.webhook_attempts (delivery_id, attempt, at, status_code, error, duration_ms) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            row["delivery_id"], attempt, at, status_code if error is None else _status_of(error),
            None if error is None else error.reason[:2000], duration_ms)
        if error is None:
            await conn.execute("UPDATE notify.webhook_deliveries SET status = 'delivered', delivered_at = $2, "
                               "lease_until = NULL WHERE delivery_id = $1", row["delivery_id"], at)
        elif dead:
            await conn.execute("UPDATE notify.webhook_deliveries SET status = 'dead', lease_until = NULL "
                               "WHERE delivery_id = $1", row["delivery_id"])
            letter = DeadLetter(
                id=ids.event_id("dlq", "notify-webhook", row["subscriber"], row["event_id"]), occurred_at=at,
                service="notify", error="gave_up", subject=row["subject"], consumer=f"webhook:{row['subscriber']}",
                reason=f"webhook to {row['url']} failed {attempt} times, last: {error.reason}"[:2000],
                num_delivered=attempt, headers={webhooks.EVENT_ID: row["event_id"]}, payload=bytes(row["body"]),
                payload_size=len(row["body"]), camera_id=_camera(row["subject"]))
            await store.add_event(conn, subjects.dlq("notify"), letter, at)
        else:
            retry_at = at + timedelta(seconds=backoff(config.webhook_retry, attempt))
            await conn.execute("UPDATE notify.webhook_deliveries SET status = 'pending', next_attempt_at = $2, "
                               "lease_until = NULL WHERE delivery_id = $1", row["delivery_id"], retry_at)
    result = "delivered" if error is None else ("dead" if dead else "retry")
    metrics.WEBHOOKS.labels(row["subscriber"], result).inc()
    if error is not None:
        log.warning("webhook not delivered", extra={"fields": {"subscriber": row["subscriber"], "attempt": attempt,
                                                               "result": result, "reason": error.reason}})


def _status_of(error: DeliveryError) -> int | None:
    reason = error.reason
    if reason.startswith("answered "):
        try:
            return int(reason.split()[1].rstrip(":"))
        except ValueError:
            return None
    return None


def _camera(subject: str) -> str | None:
    parts = subject.split(".")
    return parts[4] if len(parts) >= 5 and parts[0] == "traffic" else None


async def run(pool: asyncpg.Pool, config: Config, session: aiohttp.ClientSession, now: Callable[[], datetime],
              stop: asyncio.Event, wake: asyncio.Event, interval_s: float) -> None:
    while not stop.is_set():
        try:
            if await tick(pool, config, session, now):
                continue
        except store.TRANSIENT as exc:
            log.warning("webhook loop failed; retrying", extra={"fields": {"error": repr(exc)}})
        waits = [asyncio.create_task(stop.wait()), asyncio.create_task(wake.wait())]
        await asyncio.wait(waits, timeout=interval_s, return_when=asyncio.FIRST_COMPLETED)
        for task in waits:
            task.cancel()
        wake.clear()
