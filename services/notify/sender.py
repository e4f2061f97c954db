"""Sends the notices the store owes: claim due ones (lease, FOR UPDATE SKIP LOCKED), deliver on
their transport, record sent or failed with the event in the same transaction.

A notice whose sender died mid-send is claimed again when its lease expires and sent with the
same idempotency key (Message-ID, Idempotency-Key, event id), so the receiving end can tell a
resend from a new notice; a notice recorded as sent is never claimed again.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import aiohttp
import asyncpg
import msgspec

from proto import ids, subjects
from proto.v1 import DeadLetter, NoticeFailed, NoticeSent
from services.notify import alerts, decisions, mail, metrics, post, sms, store, webhooks
from services.notify.config import Config, Retry
from services.notify.outcome import DeliveryError
from services.runtime.retry import Backoff

log = logging.getLogger("notify.sender")

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def backoff(retry: Retry, attempt: int) -> float:
    """The wait before the next send after `attempt` sends (the first: retry.base_s)."""
    return Backoff(initial_s=retry.base_s, max_s=retry.max_s).delay(attempt - 1)


class Sender:
    def __init__(self, pool: asyncpg.Pool, config: Config, session: aiohttp.ClientSession, *, smtp: mail.Smtp,
                 sms_url: str, sms_token: str, spool_dir: str, clock: Clock = utc_now, concurrency: int = 8,
                 lease_s: float = 120.0) -> None:
        self.pool = pool
        self.config = config
        self.session = session
        self.smtp = smtp
        self.sms_url = sms_url
        self.sms_token = sms_token
        self.spool_dir = spool_dir
        self.clock = clock
        self.concurrency = concurrency
        self.lease_s = lease_s
        self.wake = asyncio.Event()
        self.on_events: Callable[[], None] = lambda: None  # events were queued: wake the publisher

    async def run(self, stop: asyncio.Event, poll_s: float) -> None:
        """Keep up to `concurrency` sends in flight: a slow mail server holds one slot, not the
        loop. On stop, the sends in hand are finished and recorded before returning."""
        inflight: set[asyncio.Task] = set()
        while not stop.is_set():
            free = self.concurrency - len(inflight)
            claimed: list[store.Claimed] = []
            if free > 0:
                try:
                    claimed = await store.claim(self.pool, self.clock(), free, self.lease_s)
                except store.TRANSIENT as exc:
                    log.warning("claiming notices failed; retrying", extra={"fields": {"error": repr(exc)}})
            for notice in claimed:
                task = asyncio.create_task(self._attempt(notice))
                inflight.add(task)
                task.add_done_callback(inflight.discard)
            if claimed and len(inflight) < self.concurrency:
                continue  # more may be due
            waits = [asyncio.create_task(stop.wait()), asyncio.create_task(self.wake.wait())]
            await asyncio.wait([*waits, *inflight], timeout=poll_s, return_when=asyncio.FIRST_COMPLETED)
            for task in waits:
                task.cancel()
            self.wake.clear()
        if inflight:
            await asyncio.gather(*inflight, return_exceptions=True)

    async def tick(self) -> int:
        """Claim and send one round; returns how many notices were attempted."""
        claimed = await store.claim(self.pool, self.clock(), self.concurrency, self.lease_s)
        await asyncio.gather(*(self._attempt(notice) for notice in claimed))
        return len(claimed)

    async def _attempt(self, notice: store.Claimed) -> None:
        try:
            await self.attempt(notice)
        except store.TRANSIENT as exc:
            # The outcome could not be recorded: the lease expires and the notice is sent again
            # with the same idempotency key.
            log.warning("recording a delivery failed", extra={"fields": {"notice": notice.notice_id,
                                                                         "error": repr(exc)}})
        self.on_events()

    async def attempt(self, notice: store.Claimed) -> None:
        if notice.kind in alerts.KINDS:
            await self.attempt_alert(notice)
            return
        started = time.perf_counter()
        try:
            await self.deliver(notice)
        except DeliveryError as exc:
            metrics.SEND_SECONDS.labels(notice.transport).observe(time.perf_counter() - started)
            await self._failed(notice, exc)
            return
        except Exception as exc:  # a bug in a template or transport must not stop the loop
            log.exception("delivery crashed", extra={"fields": {"notice": notice.notice_id}})
            await self._failed(notice, DeliveryError(f"internal error: {exc!r}"))
            return
        metrics.SEND_SECONDS.labels(notice.transport).observe(time.perf_counter() - started)
        now = self.clock()
        event = NoticeSent(
            id=ids.event_id("ntc", notice.notice_id), camera_id=notice.camera_id, occurred_at=now,
            case_id=notice.case_id, notice_id=notice.notice_id, kind=notice.kind, channel=notice.channel,  # type: ignore[arg-type]
            recipient=notice.recipient, document_sha256=notice.document_sha256 or "", respond_by=notice.respond_by)
        warning_due = decisions.warning_due(now, self.config) if notice.kind == "owner_notice" else None
        recorded = await store.mark_sent(self.pool, notice, now, subjects.notice_sent(notice.camera_id, notice.channel),
                                         event, self.config.webhooks, warning_due)
        metrics.NOTICES.labels(notice.kind, notice.channel, "sent" if recorded else "lease_lost").inc()
        log.info("notice sent", extra={"fields": {"notice": notice.notice_id, "case": notice.case_id,
                                                  "kind": notice.kind, "channel": notice.channel,
                                                  "attempt": notice.attempts}})

    async def _failed(self, notice: store.Claimed, error: DeliveryError) -> None:
        now = self.clock()
        will_retry = not error.permanent and notice.attempts < self.config.retry.attempts
        retry_at = now + timedelta(seconds=backoff(self.config.retry, notice.attempts)) if will_retry else None
        event = NoticeFailed(
            id=ids.event_id("ntf", notice.notice_id, notice.attempts), camera_id=notice.camera_id, occurred_at=now,
            case_id=notice.case_id, notice_id=notice.notice_id, kind=notice.kind, channel=notice.channel,  # type: ignore[arg-type]
            reason=error.reason[:500], attempt=notice.attempts, will_retry=will_retry)
        await store.mark_failed(self.pool, notice, now, error.reason, retry_at,
                                subjects.notice_failed(notice.camera_id, notice.channel), event, self.config.webhooks)
        metrics.NOTICES.labels(notice.kind, notice.channel, "retry" if will_retry else "failed").inc()
        log.warning("notice not delivered", extra={"fields": {"notice": notice.notice_id, "kind": notice.kind,
                                                              "channel": notice.channel, "attempt": notice.attempts,
                                                              "will_retry": will_retry, "reason": error.reason}})

    # --- incident alerts ----------------------------------------------------------------------------
    async def attempt_alert(self, notice: store.Claimed) -> None:
        """Deliver an incident alert with the notices' lease, retries and idempotency keys. It
        publishes no notice.sent/failed (those are about cases, for the police and the portal);
        a last failure leaves the row `failed` and a dead letter on traffic.dlq.notify."""
        started = time.perf_counter()
        error: DeliveryError | None = None
        try:
            await self.deliver_alert(notice)
        except DeliveryError as exc:
            error = exc
        except Exception as exc:  # a bug in a template or transport must not stop the loop
            log.exception("alert delivery crashed", extra={"fields": {"notice": notice.notice_id}})
            error = DeliveryError(f"internal error: {exc!r}")
        metrics.SEND_SECONDS.labels(notice.transport).observe(time.perf_counter() - started)
        now = self.clock()
        if error is None:
            recorded = await store.mark_sent(self.pool, notice, now, "", None, (), None)
            metrics.INCIDENT_ALERTS.labels(notice.kind, notice.channel, "sent" if recorded else "lease_lost").inc()
            log.info("incident alert sent", extra={"fields": {
                "notice": notice.notice_id, "incident": notice.incident_id, "kind": notice.kind,
                "channel": notice.channel, "recipient": notice.recipient, "attempt": notice.attempts}})
            return
        will_retry = not error.permanent and notice.attempts < self.config.retry.attempts
        retry_at = now + timedelta(seconds=backoff(self.config.retry, notice.attempts)) if will_retry else None
        letter = None
        if not will_retry and notice.incident is not None:
            incident = notice.incident
            payload = msgspec.json.encode(incident)
            letter = DeadLetter(
                id=ids.event_id("dlq", "notify-alert", notice.notice_id), occurred_at=now, service="notify",
                error="gave_up", subject=subjects.incident_detected(incident.camera_id, incident.type),
                consumer=f"alert:{notice.recipient}:{notice.channel}",
                reason=f"{notice.kind} to {notice.address} failed {notice.attempts} times, last: {error.reason}"[:2000],
                num_delivered=notice.attempts, headers={"Roadwatch-Alert-Id": notice.notice_id}, payload=payload,
                payload_size=len(payload), camera_id=incident.camera_id)
        await store.mark_failed(self.pool, notice, now, error.reason, retry_at, subjects.dlq("notify"), letter, ())
        if letter is not None:
            self.on_events()
        metrics.INCIDENT_ALERTS.labels(notice.kind, notice.channel, "retry" if will_retry else "failed").inc()
        log.warning("incident alert not delivered", extra={"fields": {
            "notice": notice.notice_id, "incident": notice.incident_id, "kind": notice.kind, "channel": notice.channel,
            "recipient": notice.recipient, "attempt": notice.attempts, "will_retry": will_retry,
            "reason": error.reason}})

    async def deliver_alert(self, notice: store.Claimed) -> None:
        if notice.incident is None or self.config.incident_alerts is None:
            raise DeliveryError("no incident or no incident_alerts in the configuration", permanent=True)
        if notice.transport == "smtp":
            subject, body = alerts.wording(self.config, notice.incident, notice.kind, recipient=notice.recipient,
                                           cleared=notice.cleared)
            sender = self.config.incident_alerts.email or self.config.email
            message = mail.compose(
                sender=sender.sender, sender_name=sender.sender_name, to=notice.address, subject=subject, body=body,
                notice_id=notice.notice_id, case_id="", sent_at=self.clock(),
                headers={"X-Roadwatch-Incident-Id": notice.incident_id})
            await mail.send(self.smtp, message)
        elif notice.transport == "webhook":
            body = alerts.webhook_body(self.config, notice.incident, notice.kind, alert=notice.notice_id,
                                       recipient=notice.recipient, cleared=notice.cleared)
            await webhooks.post(self.session, notice.address, self.config.secrets.get(notice.secret_env, ""), body,
                                event_id=notice.notice_id, attempt=notice.attempts)
        else:
            raise DeliveryError(f"unknown transport {notice.transport!r} for an alert", permanent=True)

    # --- what each notice says, on which transport -------------------------------------------------
    def values(self, notice: store.Claimed) -> dict[str, str]:
        commune = self.config.communes.get(notice.recipient)
        return decisions.fields(
            notice.case, notice.vehicle, notice.owner, self.config, notice_id=notice.notice_id,
            notice_at=notice.created_at,
            respond_by_at=notice.respond_by or decisions.respond_by(notice.created_at, self.config),
            commune=commune.name if commune else notice.recipient, warned_since=notice.warned_since)

    def wording(self, notice: store.Claimed) -> tuple[str, str]:
        templates = self.config.templates
        subject, body = {
            "owner_notice": (templates.email_subject, templates.email_body),
            "commune_transfer": (templates.transfer_email_subject, templates.transfer_email_body),
            "inspection_warning": (templates.warning_subject, templates.warning_body),
            "inspection_lifted": (templates.lifted_subject, templates.lifted_body),
        }[notice.kind]
        values = self.values(notice)
        return decisions.render(subject, values), decisions.render(body, values)

    async def deliver(self, notice: store.Claimed) -> None:
        if notice.transport == "smtp":
            subject, body = self.wording(notice)
            attachments = [(f"{notice.kind}-{notice.case_id}.pdf", notice.document)] if notice.document else []
            message = mail.compose(
                sender=self.config.email.sender, sender_name=self.config.email.sender_name, to=notice.address,
                subject=subject, body=body, notice_id=notice.notice_id, case_id=notice.case_id,
                sent_at=self.clock(), attachments=attachments)
            await mail.send(self.smtp, message)
        elif notice.transport == "sms":
            text = decisions.render(self.config.templates.sms, self.values(notice))
            await sms.send(self.session, self.sms_url, self.sms_token, notice_id=notice.notice_id, to=notice.address,
                           text=text)
        elif notice.transport == "spool":
            await post.spool(self.spool_dir, notice.notice_id, notice.document)
        elif notice.transport == "webhook":
            subject, text = self.wording(notice)
            body = msgspec.json.encode(_AgencyNotice(
                notice_id=notice.notice_id, kind=notice.kind, case_id=notice.case_id,
                plate=notice.vehicle.plate_printed or notice.case.plate, vehicle_type=notice.vehicle.vehicle_type,
                violation_type=notice.case.violation_type, violation_at=notice.case.violation_at,
                agency=notice.case.agency, title=subject, text=text, document_sha256=notice.document_sha256 or "",
                document_pdf_base64=base64.b64encode(notice.document).decode() if notice.document else ""))
            await webhooks.post(self.session, notice.address, self.config.secrets.get(notice.secret_env, ""), body,
                                event_id=notice.notice_id, attempt=notice.attempts)
        else:
            raise DeliveryError(f"unknown transport {notice.transport!r}", permanent=True)


class _AgencyNotice(msgspec.Struct, frozen=True, kw_only=True):
    """What an agency system receives by webhook: no owner personal data (the inspection
    registry must not get it; a commune transfer carries it inside the letter only)."""

    notice_id: str
    kind: str
    case_id: str
    plate: str
    vehicle_type: str
    violation_type: str
    violation_at: datetime
    agency: str
    title: str
    text: str
    document_sha256: str = ""
    document_pdf_base64: str = ""

