"""What every request handler needs (pool, JetStream, agencies, evidence store), and the
after-commit publishing of decided events (the outbox)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import nats.js.errors
from nats.aio.client import Client as NATS
from aiohttp import web
from nats.js import JetStreamContext
from nats.js.object_store import ObjectStore

from services.portal import metrics, store
from services.portal.agencies import Directory, User
from services.portal.anchors import Key
from services.portal.settings import Settings
from services.runtime.bus import MSG_ID

log = logging.getLogger("portal")

KEY: web.AppKey["Portal"] = web.AppKey("portal", object)  # type: ignore[arg-type]
COOKIE = "rw_token"


class EvidenceError(Exception):
    """The object is missing, or its content no longer matches its SHA-256."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class RateLimiter:
    """A token bucket per client: `rate` requests a minute, bursts up to `rate`.

    In memory, per replica: enough to stop a script scraping plates through one replica; a
    limit across replicas would belong in the ingress.
    """

    def __init__(self, per_minute: int, max_clients: int = 100_000) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(per_minute)
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def allow(self, client: str, now: float | None = None) -> tuple[bool, float]:
        """(allowed, seconds until the next request would be)."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[client] = (tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return allowed, 0.0 if allowed else (1.0 - tokens) / self.rate


@dataclass
class Portal:
    config: Settings
    pool: asyncpg.Pool
    js: JetStreamContext
    directory: Directory
    limiter: RateLimiter
    nc: NATS | None = None  # the NATS connection, for the registry's owner lookup
    anchor_key: Key | None = None  # signs the audit chain's head (anchors.py); None: not anchored
    frames: Any = None  # frames.LatestFrames: each camera's newest frame for the board
    board: Any = None   # board.BoardHub: changes heard from PostgreSQL, fanned out to live boards
    views: Any = None   # board.ViewAudit: who watched which camera's live picture
    _evidence: ObjectStore | None = field(default=None, repr=False)

    def user(self, request: web.Request) -> User | None:
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else request.cookies.get(COOKIE, "")
        return self.directory.user_for_token(token) if token else None

    def client(self, request: web.Request) -> str:
        if self.config.trust_forwarded and request.headers.get("X-Forwarded-For"):
            return request.headers["X-Forwarded-For"].split(",")[0].strip()
        return request.remote or ""

    async def evidence(self, sha256: str) -> bytes:
        """The object's bytes, after checking that they still hash to the name they are filed under."""
        if self._evidence is None:
            try:
                self._evidence = await self.js.object_store(self.config.evidence_bucket)
            except nats.js.errors.BucketNotFoundError as exc:
                raise EvidenceError(404, "kho lưu trữ hình ảnh chưa có") from exc
        try:
            result = await self._evidence.get(sha256)
        except (nats.js.errors.ObjectNotFoundError, nats.js.errors.NotFoundError) as exc:
            raise EvidenceError(404, "không tìm thấy hình ảnh chứng cứ") from exc
        data = result.data or b""
        if hashlib.sha256(data).hexdigest() != sha256:
            metrics.EVIDENCE_MISMATCH.inc()
            log.error("evidence does not match its sha256", extra={"fields": {"sha256": sha256}})
            raise EvidenceError(502, "hình ảnh chứng cứ không khớp mã SHA-256: đã bị thay đổi")
        metrics.EVIDENCE_BYTES.inc(len(data))
        return data

    async def publish_outbox(self, event_id: str, subject: str, payload: bytes) -> bool:
        """Publish a committed decision; on failure it stays in the outbox for `outbox_loop`."""
        try:
            await self.js.publish(subject, payload, headers={MSG_ID: event_id}, timeout=5)
        except Exception as exc:  # NATS away: the loop below retries
            log.warning("publish failed; left in the outbox", extra={"fields": {"event": event_id, "error": repr(exc)}})
            return False
        async with self.pool.acquire() as conn:
            await store.outbox_done(conn, event_id)
        return True

    async def outbox_loop(self, stop: asyncio.Event) -> None:
        """Republish decisions whose publish did not happen (a crash or NATS outage after commit);
        the deterministic event id makes a late duplicate harmless."""
        while not stop.is_set():
            try:
                async with self.pool.acquire() as conn:
                    rows = await store.outbox_pending(conn, self.config.outbox_retry_s)
                for row in rows:
                    await self.publish_outbox(row["event_id"], row["subject"], bytes(row["payload"]))
                async with self.pool.acquire() as conn:
                    metrics.OUTBOX_PENDING.set(await store.outbox_count(conn))
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("outbox pass failed", extra={"fields": {"error": repr(exc)}})
            try:
                await asyncio.wait_for(stop.wait(), timeout=min(self.config.outbox_retry_s, 5.0))
            except asyncio.TimeoutError:
                pass
