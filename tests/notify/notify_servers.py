"""Real servers around notify in the tests: an SMTP server (aiosmtpd), an SMS gateway and
webhook receivers (aiohttp), the registry service itself, and notify in-process."""

from __future__ import annotations

import asyncio
import email
import email.policy
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import msgspec
import nats.js.errors
from aiohttp import web
from aiosmtpd.smtp import SMTP
from nats.js import api

from proto import streams
from proto.v1 import Owner, Vehicle
from services.notify import webhooks
from services.notify.config import Config, Recipient, Retry, Subscriber, WebhookTarget
from services.notify.settings import Settings
from services.registry.settings import Settings as RegistrySettings
from services.runtime import migrations

SECRET = "k8s-secret-for-tests"


class Clock:
    """Real time plus an offset that a test moves forward (20 days in one step)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


# --- SMTP --------------------------------------------------------------------------------------
@dataclass
class Mail:
    rcpt: list[str]
    message: email.message.EmailMessage

    @property
    def attachments(self) -> list[tuple[str, bytes]]:
        return [(part.get_filename(), part.get_payload(decode=True)) for part in self.message.iter_attachments()]

    @property
    def body(self) -> str:
        return self.message.get_body(("plain",)).get_content()


class SmtpSink:
    """Accepts every message, like a mail server: stored when it answers 250. `hold` keeps the
    answer back, so a test can kill the sender while the server holds a message."""

    def __init__(self) -> None:
        self.mails: list[Mail] = []
        self.hold: asyncio.Event | None = None
        self.hold_after: int | None = None  # hold once this many messages were accepted
        self.holding = asyncio.Event()
        self.held = 0
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        if address.startswith("refused"):
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        if self.hold is not None and self.hold_after is not None and len(self.mails) >= self.hold_after:
            self.held += 1
            self.holding.set()
            await self.hold.wait()
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.mails.append(Mail(rcpt=list(envelope.rcpt_tos), message=message))
        return "250 Message accepted for delivery"

    async def start(self) -> SmtpSink:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: SMTP(self, hostname="smtp.test", enable_SMTPUTF8=True),
                                               "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()

    def to(self, address: str) -> list[Mail]:
        return [mail for mail in self.mails if address in mail.rcpt]


# --- HTTP receivers ------------------------------------------------------------------------------
@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    signed: bool

    def json(self):
        return msgspec.json.decode(self.body)


@dataclass
class HttpSink:
    """An SMS gateway and webhook receiver: records every request; answers `fail[path]` errors
    first (a list of status codes, consumed in order), then 200."""

    fail: dict[str, list[int]] = field(default_factory=dict)
    requests: list[Received] = field(default_factory=list)
    port: int = 0
    runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        signature = request.headers.get(webhooks.SIGNATURE, "")
        signed = bool(signature) and webhooks.verify(SECRET, signature, body)
        queue = self.fail.get(request.path, [])
        status = queue.pop(0) if queue else 200
        if signature and not signed:
            status = 401
        self.requests.append(Received(request.path, dict(request.headers), body, status, signed))
        return web.json_response({"ok": status == 200}, status=status)

    async def start(self) -> HttpSink:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str, status: int | None = None) -> list[Received]:
        return [r for r in self.requests if r.path == path and (status is None or r.status == status)]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


# --- databases and the registry --------------------------------------------------------------------
async def migrate(database_url: str) -> None:
    await migrations.migrate(database_url, services=["registry", "notify"])


async def register(database_url: str, vehicle: Vehicle, owner: Owner) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        owner_id = await conn.fetchval(
            "INSERT INTO registry.owners (kind, name, national_id, address, commune_code, province, phone, email) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (national_id) DO UPDATE SET name = excluded.name "
            "RETURNING id", owner.kind, owner.name, owner.national_id, owner.address, owner.commune_code,
            owner.province, owner.phone or None, owner.email or None)
        await conn.execute(
            "INSERT INTO registry.vehicles (plate, plate_display, plate_colour, vehicle_type, brand, colour, "
            "registration_date, inspection_status, owner_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            vehicle.plate, vehicle.plate_printed, vehicle.plate_colour, vehicle.vehicle_type, vehicle.brand,
            vehicle.colour, vehicle.registration_date, vehicle.inspection_status, owner_id)
    finally:
        await conn.close()


def registry_settings(nats_url: str, database_url: str) -> RegistrySettings:
    return RegistrySettings(nats_url=nats_url, database_url=database_url, http_port=0, db_pool_size=2)


async def start_registry(nats_url: str, database_url: str, unique: str):
    """The registry service itself, with its own consumers and request subject for this test."""
    from services.registry import main as registry_main

    stop, ready = asyncio.Event(), asyncio.get_running_loop().create_future()
    subject = f"traffic.registry.v1.lookup-owner-{unique}"
    task = asyncio.create_task(registry_main.run(
        registry_settings(nats_url, database_url), stop=stop, ready=ready,
        violations_consumer=streams.Consumer(name=f"registry-{unique}", stream="VIOLATIONS",
                                             filter_subjects=(f"traffic.violation.detected.v1.{unique}.>",)),
        detections_consumer=streams.Consumer(name=f"registry-hotlist-{unique}", stream="DETECTIONS",
                                             filter_subjects=(f"traffic.detection.made.v1.{unique}",)),
        lookup_subject=subject))
    await asyncio.wait_for(asyncio.shield(ready), 30)
    return subject, stop, task


# --- evidence ---------------------------------------------------------------------------------------
async def put_evidence(js, data: bytes) -> str:
    try:
        store = await js.object_store("evidence")
    except nats.js.errors.BucketNotFoundError:
        store = await js.create_object_store("evidence", config=api.ObjectStoreConfig(bucket="evidence"))
    digest = hashlib.sha256(data).hexdigest()
    await store.put(digest, data)
    return digest


# --- notify ------------------------------------------------------------------------------------------
def notify_settings(nats_url: str, database_url: str, *, unique: str, camera: str, smtp_port: int, sms_url: str,
                    spool: Path, lookup_subject: str, **extra) -> Settings:
    return Settings(
        nats_url=nats_url, database_url=database_url, http_port=0, db_pool_size=4, smtp_host="127.0.0.1",
        smtp_port=smtp_port, smtp_timeout_s=10, sms_gateway_url=sms_url, sms_gateway_token="gateway-token",
        post_spool_dir=str(spool), registry_lookup_subject=lookup_subject, registry_timeout_s=5,
        consumer_name=f"notify-{unique}",
        consumer_filter=(f"traffic.case.reviewed.v1.{camera}.>", f"traffic.case.resolved.v1.{camera}"),
        poll_interval_s=0.05, lease_s=5, **extra)


def rules_for_test(base: Config, sink: HttpSink, *, subscribers: tuple[Subscriber, ...] = (),
               webhook_attempts: int = 4) -> Config:
    """The example configuration with quick retries, the inspection registry on a webhook and
    the given subscribers, all pointing at the test's receiver."""
    return msgspec.structs.replace(
        base,
        retry=Retry(attempts=4, base_s=0.05, max_s=0.2),
        webhook_retry=Retry(attempts=webhook_attempts, base_s=0.05, max_s=0.2),
        inspection_registry=Recipient(name="Cục Đăng kiểm Việt Nam",
                                      webhook=WebhookTarget(url=sink.url("/dang-kiem"), secret_env="DK_SECRET")),
        webhooks=subscribers,
        secrets={"DK_SECRET": SECRET, **{s.secret_env: SECRET for s in subscribers}})


async def start_notify(settings: Settings, rules: Config, clock: Callable[[], datetime]):
    from services.notify import main as notify_main

    stop, ready = asyncio.Event(), asyncio.get_running_loop().create_future()
    task = asyncio.create_task(notify_main.run(settings, rules, stop=stop, ready=ready, clock=clock))
    done, _ = await asyncio.wait([task, ready], timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        raise AssertionError(f"notify stopped at start: {task.result()!r}")
    if not done:
        stop.set()
        raise AssertionError("notify was not ready within 30 s")
    return stop, task


async def consumer_idle(js, name: str) -> bool:
    info = await js.consumer_info("CASES", name)
    return info.num_pending == 0 and info.num_ack_pending == 0
