"""What notify does with a case event: look the owner up, render the letters, record the case
and the notices it owes in one transaction. Sending happens later (sender.py), so a slow mail
server never holds a message of the CASES stream, and the ack means "recorded", not "sent"."""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import logging
import time
from collections.abc import Callable
from datetime import datetime

import asyncpg
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from proto import codec, ids, subjects
from proto.v1 import CaseResolved, CaseReviewed, NoticeHeld, Owner, Vehicle
from services.notify import decisions, evidence, letter, metrics, owners, scheduler, store
from services.notify.config import Config
from services.runtime import bus

log = logging.getLogger("notify.cases")

REVIEWED_PREFIX = "traffic.case.reviewed."


def decode(msg: Msg) -> CaseReviewed | CaseResolved:
    """One consumer reads both case events; the subject says which it is."""
    kind = CaseReviewed if msg.subject.startswith(REVIEWED_PREFIX) else CaseResolved
    return codec.decode(msg.data, kind)


class Cases:
    def __init__(self, pool: asyncpg.Pool, nc: NATS, config: Config, *, fonts: letter.Fonts,
                 lookup_subject: str, lookup_timeout_s: float, evidence_max: int,
                 clock: Callable[[], datetime], on_notices: Callable[[], None],
                 renderer: concurrent.futures.Executor | None = None) -> None:
        self.pool = pool
        self.nc = nc
        self.js = nc.jetstream()
        self.config = config
        self.fonts = fonts
        self.lookup_subject = lookup_subject
        self.lookup_timeout_s = lookup_timeout_s
        self.evidence_max = evidence_max
        self.clock = clock
        self.on_notices = on_notices
        # Letters are CPU work: in worker processes (RENDER_PROCESSES) they use the other cores
        # and leave this event loop free for lookups, sends and acks; else in a thread.
        self.renderer = renderer

    async def handle(self, event: CaseReviewed | CaseResolved, msg: Msg) -> None:
        if isinstance(event, CaseReviewed):
            await self.on_reviewed(event)
        else:
            await self.on_resolved(event)

    async def on_reviewed(self, case: CaseReviewed) -> None:
        if case.decision != "confirmed":
            metrics.CASES.labels("reviewed", "rejected").inc()
            return
        if case.agency not in self.config.issuing:
            raise bus.Invalid(f"agency {case.agency!r} has no unit in the notify configuration")
        if await store.case_known(self.pool, case.case_id):
            held = await store.held_duplicate(self.pool, case.case_id)
            if held is not None and held[0] in case.distinct_from:
                # The reviewer judged the held case another event: plan it now.
                _, vehicle, owner = held
                log.info("held case released by the reviewer", extra={"fields": {"case": case.case_id}})
                await self.plan(case, vehicle, owner)
                return
            metrics.CASES.labels("reviewed", "duplicate").inc()
            self.on_notices()
            return
        if await store.resolved_early(self.pool, case.case_id):
            metrics.CASES.labels("reviewed", "already_resolved").inc()
            log.info("case already resolved; no notice", extra={"fields": {"case": case.case_id}})
            return
        try:
            vehicle, owner = await owners.lookup(self.nc, self.lookup_subject, case.plate, self.lookup_timeout_s,
                                                case_id=case.case_id)
        except owners.NotRegistered as exc:
            metrics.OWNER_LOOKUPS.labels("not_registered").inc()
            raise bus.Invalid(str(exc)) from exc
        except owners.RegistryUnavailable:
            metrics.OWNER_LOOKUPS.labels("unavailable").inc()
            raise
        metrics.OWNER_LOOKUPS.labels("found").inc()
        await self.plan(case, vehicle, owner)

    async def plan(self, case: CaseReviewed, vehicle: Vehicle, owner: Owner) -> None:
        """Hold the case when the configuration has no legal basis for it or it repeats a case
        already notified; otherwise render its letters and record its notices."""
        now = self.clock()
        if decisions.legal(case, vehicle, self.config) is None:
            detail = decisions.no_legal_basis(case, vehicle, self.config)
            event = self.held_event(case, vehicle, "no_legal_basis", detail, now)
            await store.hold_case(self.pool, case, vehicle, owner, now, reason="no_legal_basis", detail=detail,
                                  subject=subjects.notice_held(case.camera_id), event=event)
            metrics.CASES.labels("reviewed", "no_legal_basis").inc()
            log.warning("case held: cần căn cứ pháp lý", extra={"fields": {"case": case.case_id, "detail": detail}})
            self.on_notices()
            return
        planned = decisions.plan_case(case, vehicle, owner, self.config)
        respond_by = decisions.respond_by(now, self.config)
        wanted = {notice.document for notice in planned if notice.document}
        try:
            images = await evidence.images(self.js, case.evidence, self.evidence_max) if wanted else []
        except evidence.EvidenceCorrupt as exc:
            raise bus.Invalid(str(exc)) from exc
        documents: dict[str, tuple[str, bytes]] = {}
        for document in sorted(wanted):
            started = time.perf_counter()
            job = self.letter_job(document, case, vehicle, owner, now, respond_by, images)
            if self.renderer is None:
                pdf = await asyncio.to_thread(letter.render_job, job)
            else:
                pdf = await asyncio.get_running_loop().run_in_executor(self.renderer, letter.render_job, job)
            metrics.RENDER_SECONDS.observe(time.perf_counter() - started)
            documents[document] = hashlib.sha256(pdf).hexdigest(), pdf

        def duplicate(earlier: str):
            return subjects.notice_held(case.camera_id), self.held_event(
                case, vehicle, "possible_duplicate", f"có thể trùng với {earlier}", now, duplicate_of=earlier)

        created = await store.record_case(self.pool, case, vehicle, owner, planned, documents, respond_by, now,
                                          duplicates=self.config.duplicates, on_duplicate=duplicate)
        if isinstance(created, str):
            metrics.CASES.labels("reviewed", "possible_duplicate").inc()
            log.warning("case held: possible duplicate", extra={"fields": {"case": case.case_id, "of": created}})
            self.on_notices()
            return
        metrics.CASES.labels("reviewed", "recorded").inc()
        delay_s = (now - case.violation_at).total_seconds()
        metrics.NOTICE_DELAY_SECONDS.observe(delay_s)
        if delay_s > self.config.deadlines.notice_within_days * metrics.DAY_S:
            # Still sent (the owner must be told), but the operators must see the legal limit missed.
            metrics.LATE_NOTICES.inc()
            log.warning("notice later than the legal limit", extra={"fields": {
                "case": case.case_id, "days": round(delay_s / metrics.DAY_S, 1),
                "limit_days": self.config.deadlines.notice_within_days}})
        log.info("case recorded", extra={"fields": {"case": case.case_id, "notices": created,
                                                    "channels": [p.channel for p in planned]}})
        self.on_notices()

    def held_event(self, case: CaseReviewed, vehicle: Vehicle, reason: str, detail: str, now: datetime,
                   duplicate_of: str = "") -> NoticeHeld:
        return NoticeHeld(
            id=ids.event_id("held", case.case_id, reason, duplicate_of), camera_id=case.camera_id, occurred_at=now,
            case_id=case.case_id, reason=reason, detail=detail, violation_type=case.violation_type,  # type: ignore[arg-type]
            vehicle_class=self.config.legal_class(decisions.vehicle_type(case, vehicle)) or "",
            duplicate_of=duplicate_of)

    async def release_held(self) -> int:
        """Plan the cases held for want of a legal basis whose entry the configuration now has
        (run at start: adding an entry and restarting notify sends them)."""
        released = 0
        for case, vehicle, owner in await store.held_cases(self.pool, "no_legal_basis"):
            if decisions.legal(case, vehicle, self.config) is not None:
                await self.plan(case, vehicle, owner)
                released += 1
        if released:
            log.info("held cases released", extra={"fields": {"cases": released}})
        return released

    def letter_job(self, document: str, case: CaseReviewed, vehicle: Vehicle, owner: Owner, now: datetime,
                   respond_by: datetime, images: list[bytes]) -> letter.Job:
        commune = self.config.communes.get(owner.commune_code)
        values = decisions.fields(case, vehicle, owner, self.config, notice_at=now, respond_by_at=respond_by,
                                  commune=commune.name if commune else owner.commune_code)
        template = (self.config.templates.owner_letter if document == "owner_letter"
                    else self.config.templates.transfer_letter)
        return letter.Job(template=template, values=values, unit=self.config.unit(case.agency), issued_at=now,
                          images=tuple(images), fonts=self.fonts)

    async def on_resolved(self, event: CaseResolved) -> None:
        lifted = await scheduler.resolve(self.pool, self.config, event, self.clock())
        metrics.CASES.labels("resolved", "lifted" if lifted else "closed").inc()
        log.info("case resolved", extra={"fields": {"case": event.case_id, "lifting_notices": lifted}})
        if lifted:
            self.on_notices()
