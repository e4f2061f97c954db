"""What each consumed event does to the portal's tables (the consumers themselves are wired in
main.py). Idempotent on the event: a redelivery or a replay changes nothing."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, NamedTuple

import asyncpg
from nats.aio.msg import Msg

from proto import codec
from proto.v1 import (MESSAGES, CameraStatus, IncidentCleared, IncidentDetected, IncidentUpdated, NoticeFailed,
                      NoticeHeld, NoticeSent, SignalPhase, VehiclesCounted, ViolationIdentified, ViolationUnidentified)
from services.portal import cases, incidents, materialise, metrics, store
from services.runtime import bus

log = logging.getLogger("portal")


# The type each event subject carries, from the contract's table (`traffic.notice.sent.v1.` ...).
_TYPE_BY_PREFIX: tuple[tuple[str, type], ...] = tuple(
    (message.subject.partition("{")[0], message.type) for message in MESSAGES
)


def _decoder(*types: type) -> Callable[[Msg], Any]:
    """A consumer's decode: the message's type chosen by its subject among the types the consumer
    takes; any other subject is invalid (a dead letter)."""
    prefixes = tuple((prefix, type_) for prefix, type_ in _TYPE_BY_PREFIX if type_ in types)
    if len(prefixes) != len(types):
        raise ValueError(f"not every one of {types} has a subject in proto.v1.MESSAGES")

    def decode(msg: Msg) -> Any:
        for prefix, type_ in prefixes:
            if msg.subject.startswith(prefix):
                return codec.decode(msg.data, type_)
        raise bus.Invalid(f"unexpected subject {msg.subject}")

    return decode


decode_violation = _decoder(ViolationIdentified, ViolationUnidentified)
decode_notice = _decoder(NoticeSent, NoticeFailed, NoticeHeld)
decode_telemetry = _decoder(VehiclesCounted, CameraStatus, SignalPhase)
decode_incident = _decoder(IncidentDetected, IncidentUpdated, IncidentCleared)


class DuplicateRule(NamedTuple):
    window_s: float
    radius_m: float


async def on_violation(pool: asyncpg.Pool, timezone_name: str,
                       event: ViolationIdentified | ViolationUnidentified,
                       duplicates: DuplicateRule | None = None) -> str | None:
    """Open a case; returns its id, or None when the violation already has one. A case that
    repeats an open one (same plate, violation and place within the window) is flagged
    `duplicate_of` it, for the reviewer to merge."""
    if isinstance(event, ViolationIdentified):
        row, owner = materialise.case_from_identified(event)
    else:
        row, owner = materialise.case_from_unidentified(event), None
    duplicate_of = None
    async with pool.acquire() as conn, conn.transaction():
        if duplicates is not None and row["plate_key"]:
            await store.lock_plate(conn, row["plate_key"])
        case_id = await store.insert_case(conn, row, owner, timezone_name)
        if case_id is not None and duplicates is not None and row["plate_key"]:
            duplicate_of = await store.same_event(conn, {**row, "case_id": case_id}, duplicates.window_s,
                                                  duplicates.radius_m)
            if duplicate_of is not None:
                await store.update_case(conn, case_id, duplicate_of=duplicate_of)
    if case_id is None:
        metrics.DUPLICATES.labels("violation").inc()
    else:
        metrics.CASES.labels(row["state"]).inc()
        if duplicate_of is not None:
            metrics.POSSIBLE_DUPLICATES.inc()
        log.info("case opened", extra={"fields": {"case": case_id, "state": row["state"], "violation": row["violation_id"],
                                                  "possible_duplicate_of": duplicate_of}})
    return case_id


async def on_held(pool: asyncpg.Pool, event: NoticeHeld) -> None:
    """notify holds the case's notices: the case shows why ("cần căn cứ pháp lý", "có thể trùng
    với CASE-…") and stays confirmed until a person acts."""
    async with pool.acquire() as conn, conn.transaction():
        case = await store.get_case(conn, event.case_id, lock=True)
        if case is None:
            raise bus.Invalid(f"notice.held {event.id} is for unknown case {event.case_id}")
        fresh = await store.record_notice(
            conn, event_id=event.id, case_id=event.case_id, notice_id="", kind="owner_notice", channel="",
            outcome="held", reason=f"{event.reason}: {event.detail}", occurred_at=event.occurred_at)
        if not fresh:
            metrics.DUPLICATES.labels("notice").inc()
            return
        if case["state"] in ("rejected", "resolved", "merged"):
            return  # settled meanwhile: nothing to show on a closed case
        await store.update_case(conn, event.case_id, notice_hold=event.reason, notice_hold_detail=event.detail,
                                **({"duplicate_of": event.duplicate_of} if event.duplicate_of else {}))
    metrics.HELD.labels(event.reason).inc()
    log.warning("notices held by notify", extra={"fields": {"case": event.case_id, "reason": event.reason,
                                                            "detail": event.detail}})


async def on_notice(pool: asyncpg.Pool, event: NoticeSent | NoticeFailed | NoticeHeld) -> str | None:
    """Record the notice; a sent owner notice makes the case `notified`, an inspection warning
    `warned`. Returns the new state, if any."""
    if isinstance(event, NoticeHeld):
        await on_held(pool, event)
        return None
    sent = isinstance(event, NoticeSent)
    async with pool.acquire() as conn, conn.transaction():
        case = await store.get_case(conn, event.case_id, lock=True)
        if case is None:
            raise bus.Invalid(f"notice {event.notice_id} is for unknown case {event.case_id}")
        fresh = await store.record_notice(
            conn, event_id=event.id, case_id=event.case_id, notice_id=event.notice_id, kind=event.kind,
            channel=event.channel, outcome="sent" if sent else "failed",
            recipient=event.recipient if sent else "", reason="" if sent else event.reason,
            occurred_at=event.occurred_at, respond_by=event.respond_by if sent else None)
        if not fresh:
            metrics.DUPLICATES.labels("notice").inc()
            return None
        target = cases.state_after_notice(case["state"], event.kind) if sent else None
        if target is None:
            return None
        changes = {"notified_at": event.occurred_at, "respond_by": event.respond_by} if target == "notified" \
            else {"warned_at": event.occurred_at}
        await store.update_case(conn, event.case_id, state=target, **changes)
    log.info("case moved by notice", extra={"fields": {"case": event.case_id, "state": target, "notice": event.notice_id}})
    return target


def count_place(count) -> str:
    """Where a count was taken, for the `lane` column: the lane (older producers), or the count
    line and direction ("approach-north:forward"), so both directions of one line are kept apart."""
    if count.lane:
        return count.lane
    return f"{count.line}:{count.direction}" if count.line else ""


async def on_telemetry(pool: asyncpg.Pool, event: VehiclesCounted | CameraStatus | SignalPhase) -> None:
    async with pool.acquire() as conn:
        if isinstance(event, SignalPhase):
            await store.record_signal_phase(conn, event)
        elif isinstance(event, VehiclesCounted):
            await store.record_counts(
                conn, event_id=event.id, camera_id=event.camera_id, window_start=event.window_start,
                window_end=event.occurred_at, counts=[(c.vehicle_class, count_place(c), c.count) for c in event.counts])
        else:
            async with conn.transaction():
                await store.record_camera_status(conn, event)
                await store.record_camera_change(conn, event, event.id)


async def on_incident(pool: asyncpg.Pool, event: incidents.Event) -> bool:
    """Fold an incident event into its row (incidents.py: any order, each event once); the live
    boards of every replica hear of it when the transaction commits. False: applied before."""
    kind = incidents.kind_of(event)
    async with pool.acquire() as conn, conn.transaction():
        fresh = await store.apply_incident(conn, kind, event.id, event.occurred_at, incidents.opening_row(event),
                                           lambda row: incidents.changes(row, event))
    if not fresh:
        metrics.DUPLICATES.labels("incident").inc()
        return False
    metrics.INCIDENT_EVENTS.labels(kind, event.type).inc()
    log.info("incident event applied", extra={"fields": {"incident": event.incident_id, "kind": kind,
                                                          "camera": event.camera_id, "type": event.type}})
    return True
