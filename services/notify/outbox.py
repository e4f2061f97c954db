"""Publishes the events the store queued (notice.sent, notice.failed, dead letters). Each has a
deterministic id used as Nats-Msg-Id, so two replicas publishing the same row, or a publish
repeated after a crash, is stored once by JetStream."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

import asyncpg
from nats.js import JetStreamContext

from services.notify import metrics, store
from services.runtime import bus

log = logging.getLogger("notify.outbox")


async def flush(pool: asyncpg.Pool, js: JetStreamContext, now: Callable[[], datetime], limit: int = 200) -> int:
    rows = await store.unpublished(pool, limit)
    done: list[str] = []
    try:
        for row in rows:
            ack = await js.publish(row["subject"], bytes(row["payload"]), headers={bus.MSG_ID: row["event_id"]},
                                   timeout=5.0)
            metrics.EVENTS_PUBLISHED.labels("duplicate" if ack.duplicate else "stored").inc()
            done.append(row["event_id"])
    finally:
        if done:
            await store.mark_published(pool, done, now())
    return len(rows)


async def run(pool: asyncpg.Pool, js: JetStreamContext, now: Callable[[], datetime], stop: asyncio.Event,
              wake: asyncio.Event, interval_s: float) -> None:
    """Until stopped, and once more after: what was sent before the stop is also announced."""
    while True:
        stopping = stop.is_set()
        try:
            count = await flush(pool, js, now)
        except Exception as exc:  # NATS or PostgreSQL away: the rows stay and are retried
            metrics.EVENTS_PUBLISHED.labels("error").inc()
            log.warning("publishing events failed; retrying", extra={"fields": {"error": repr(exc)}})
            count = 0
            if stopping:
                return
            await asyncio.sleep(min(interval_s, 1.0))
            continue
        if stopping and count == 0:
            return
        if count == 0:
            waits = [asyncio.create_task(stop.wait()), asyncio.create_task(wake.wait())]
            await asyncio.wait(waits, timeout=interval_s, return_when=asyncio.FIRST_COMPLETED)
            for task in waits:
                task.cancel()
            wake.clear()
