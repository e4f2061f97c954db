"""The portal's operations, shared by the JSON API and the HTML pages.

Each runs in one transaction: a decision changes the case and queues its event together (never
half-applied); a read of owner data or evidence and its audit row commit together (no read
without its trace).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
import msgspec

from proto import codec, ids
from services.portal import access, audit, cases, materialise, metrics, owners, privacy, store
from services.portal.agencies import User
from services.portal.context import EvidenceError, Portal


class ActionError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def require(user: User | None, permission: str) -> User:
    if user is None:
        raise ActionError(401, "cần đăng nhập (Authorization: Bearer <mã truy cập>)")
    if not access.can(user, permission):
        raise ActionError(403, f"vai trò {user.role} không được phép thực hiện thao tác này")
    return user


async def _audit(conn, user: User, action: str, obj: str, purpose: str, client: str) -> None:
    await audit.append(conn, user_id=user.id, agency=user.agency.id, role=user.role, action=action, object=obj,
                       purpose=purpose, client=client)
    metrics.AUDIT_ROWS.labels(action).inc()


def evidence_ref(row: dict, sha256: str, *, of: str = "vụ việc") -> dict:
    """The entry of a case's (or an incident's) evidence with this SHA-256; 404 when it has none."""
    ref = next((e for e in access._json(row["evidence"]) if e["sha256"] == sha256), None)
    if ref is None:
        raise ActionError(404, f"hình ảnh không thuộc {of} này")
    return ref


async def _locked_case(conn, case_id: str) -> dict:
    """The case's row, locked until the decision's transaction ends; 404 when there is none."""
    case = await store.get_case(conn, case_id, lock=True)
    if case is None:
        raise ActionError(404, f"không có vụ việc {case_id}")
    return case


def _state_refuses(case: dict, what: str) -> ActionError:
    """409: the case's state does not allow `what`."""
    return ActionError(409, f"vụ việc {case['case_id']} đang ở trạng thái '{cases.STATE_LABELS[case['state']]}', {what}")


async def _fetch(portal: Portal, sha256: str) -> bytes:
    try:
        return await portal.evidence(sha256)
    except EvidenceError as exc:  # rolls back the audit row: nothing was seen
        raise ActionError(exc.status, str(exc)) from exc


async def read_case(portal: Portal, user: User | None, case_id: str, *, purpose: str, client: str,
                    url_prefix: str = "/api") -> access.CaseView:
    """A case as the user may see it; the owner data is read (and audited) only for roles allowed it."""
    user = require(user, "cases")
    async with portal.pool.acquire() as conn, conn.transaction():
        case = await store.get_case(conn, case_id)
        if case is None or not access.in_scope(user, case):
            raise ActionError(404, f"không có vụ việc {case_id}")
        owner = None
        if access.can(user, "owner"):
            owner = await store.get_owner(conn, case_id)
            if owner is not None:
                await _audit(conn, user, "owner_read", case_id, purpose, client)
        history = await store.history(conn, case_id)
    return access.case_view(user, case, owner=owner, history=history, url_prefix=url_prefix)


async def list_cases(portal: Portal, user: User | None, *, states: list[str] | None, plate: str | None,
                     camera_id: str | None, limit: int, offset: int, queue: bool = False) -> access.CaseList:
    user = require(user, "cases")
    async with portal.pool.acquire() as conn:
        rows, total = await store.list_cases(
            conn, states=states, communes=access.commune_scope(user), plate_key=cases.plate_key(plate) if plate else None,
            camera_id=camera_id, limit=limit, offset=offset, oldest_first=queue)
    return access.CaseList(total=total, limit=limit, offset=offset, items=[access.case_view(user, r) for r in rows])


async def read_evidence(portal: Portal, user: User | None, case_id: str, sha256: str, *, purpose: str,
                        client: str) -> tuple[bytes, str]:
    """(bytes, content type) of one evidence object of a case the user may see."""
    user = require(user, "evidence")
    async with portal.pool.acquire() as conn, conn.transaction():
        case = await store.get_case(conn, case_id)
        if case is None or not access.in_scope(user, case):
            raise ActionError(404, f"không có vụ việc {case_id}")
        ref = evidence_ref(case, sha256)
        await _audit(conn, user, "evidence_read", f"{case_id}/{sha256}", purpose, client)
        data = await _fetch(portal, sha256)
    return data, ref.get("content_type", "image/jpeg")


async def read_public_evidence(portal: Portal, case_id: str, sha256: str, *, client: str) -> tuple[bytes, str]:
    """Evidence of a case shown in the public lookup (an open, confirmed case); audited as public."""
    async with portal.pool.acquire() as conn, conn.transaction():
        case = await store.get_case(conn, case_id)
        if case is None or case["state"] not in cases.OPEN:
            raise ActionError(404, f"không có vụ việc {case_id} trong danh sách công khai")
        ref = evidence_ref(case, sha256)
        if not privacy.has_public_copy(ref):
            raise ActionError(404, "hình ảnh này không được công khai (không xác định được phương tiện vi phạm trong ảnh)")
        await audit.append(conn, user_id="public", agency="public", role="citizen", action="evidence_read",
                           object=f"{case_id}/{sha256}", purpose="tra cứu công khai", client=client)
        metrics.AUDIT_ROWS.labels("evidence_read").inc()
        data = await _fetch(portal, sha256)
    try:
        public = await asyncio.get_running_loop().run_in_executor(None, privacy.public_copy, data, ref)
    except privacy.NoPublicCopy as exc:
        raise ActionError(404, "hình ảnh này không được công khai") from exc
    return public, "image/jpeg"


def resolving_unit(portal: Portal, case: dict):
    """Where the owner goes: the police unit that confirmed the case (the one whose letter tells
    the owner to come, with the same contact details), else the unit of the place."""
    agency = next((a for a in portal.directory.agencies
                   if a.id == case["reviewer_agency"] and a.role == "police"), None)
    return agency or portal.directory.resolving_unit(case["place_commune"])


async def public_lookup(portal: Portal, plate: str) -> access.PublicLookup:
    key = cases.plate_key(plate)
    if not 5 <= len(key) <= 12:
        raise ActionError(400, "nhập biển số, ví dụ 30A-123.45 hoặc 29-B1 123.45")
    async with portal.pool.acquire() as conn:
        rows, _ = await store.list_cases(conn, states=sorted(cases.OPEN), plate_key=key, limit=100)
    items = [access.public_view(r, resolving_unit(portal, r)) for r in rows]
    return access.PublicLookup(plate=key, items=items)


def _registration(case: dict, found: owners.Found) -> tuple[dict, dict | None]:
    """(case columns, owner row) after a plate correction: the corrected plate's registration and
    owner when the registry knows it, else none, with the reason the case shows."""
    if found.vehicle is not None and found.owner is not None:
        vehicle, owner = found.vehicle, found.owner
        seen, registered = cases.PLATE_KIND.get(case["vehicle_class"]), cases.PLATE_KIND.get(vehicle.vehicle_type)
        return ({"owner_commune": owner.commune_code, "brand": vehicle.brand, "colour": vehicle.colour,
                 "inspection_status": vehicle.inspection_status, "plate_colour": vehicle.plate_colour,
                 "vehicle_type": vehicle.vehicle_type, "match": "exact", "unidentified_reason": None,
                 "mismatches": ["vehicle_type"] if seen and registered and seen != registered else []},
                {"kind": owner.kind, "name": owner.name, "national_id": owner.national_id, "address": owner.address,
                 "commune_code": owner.commune_code, "province": owner.province, "phone": owner.phone,
                 "email": owner.email})
    reason = "lookup_unavailable" if found.unavailable else "no_record"
    return ({"owner_commune": "", "brand": "", "colour": "", "inspection_status": "", "plate_colour": "",
             "vehicle_type": case["vehicle_class"], "match": None, "mismatches": [], "unidentified_reason": reason},
            None)


async def _same_event(portal: Portal, conn, case: dict, printed: str, distinct: list[str]) -> str | None:
    """The open case that `case`, confirmed with the plate `printed`, may repeat."""
    return await store.same_event(conn, {**case, "plate_key": cases.plate_key(printed)},
                                  portal.config.duplicate_window_s, portal.config.duplicate_radius_m, exclude=distinct)


def _possible_repeat(case_id: str, earlier: str) -> ActionError:
    return ActionError(409, f"vụ việc {case_id} có thể trùng với {earlier}: gộp vào {earlier}, hoặc "
                            "xác nhận đây là vụ việc khác (not_duplicate)")


async def review(portal: Portal, user: User | None, case_id: str, *, decision: str, plate: str | None,
                 reason: str | None, plate_override_reason: str | None = None, not_duplicate: bool = False,
                 client: str = "") -> access.DecisionResult:
    """Confirm (optionally with a corrected plate) or reject with a listed reason; the
    case.reviewed event is queued in the same transaction and published after commit.

    Confirming needs a plate of the format the camera's vehicle class carries (a car plate on a
    motorbike is refused) unless `plate_override_reason` says why (audited), and, for a case that
    may repeat an open one, either a merge or `not_duplicate` (audited). A corrected plate is
    looked up in the registry, so that the case shows the owner of the plate actually confirmed."""
    user = require(user, "review")
    if decision not in ("confirmed", "rejected"):
        raise ActionError(400, "decision phải là confirmed hoặc rejected")
    reason_label = None
    if decision == "rejected":
        reason_label = portal.directory.reason_label(reason or "")
        if reason_label is None:
            raise ActionError(400, "chọn lý do loại bỏ trong danh sách (/api/reject-reasons)")
    override = (plate_override_reason or "").strip()
    now = datetime.now(timezone.utc)
    async with portal.pool.acquire() as conn:
        before = await store.get_case(conn, case_id)
    if before is None:
        raise ActionError(404, f"không có vụ việc {case_id}")
    printed, corrected = before["plate"], False
    if plate is not None and plate.strip() and cases.plate_key(plate) != before["plate_key"]:
        try:
            printed = cases.format_plate(plate, before["vehicle_class"])
        except ValueError as exc:
            raise ActionError(400, f"biển số không hợp lệ: {plate!r} (ví dụ 30A-123.45)") from exc
        corrected = True
    if decision == "confirmed" and not printed:
        raise ActionError(400, "nhập biển số trước khi xác nhận vi phạm")
    if decision == "confirmed" and not cases.plate_fits_class(printed, before["vehicle_class"]) and not override:
        metrics.REFUSED.labels("plate_class").inc()
        wanted = cases.PLATE_KIND[before["vehicle_class"]]
        raise ActionError(400, f"biển số {printed} không phải {cases.PLATE_KIND_LABELS[wanted]}, trong khi camera "
                               f"ghi nhận {cases.VEHICLE_LABELS.get(before['vehicle_class'], before['vehicle_class'])}: "
                               "sửa biển số, hoặc xác nhận kèm lý do (plate_override_reason)")
    if corrected and decision == "confirmed" and not not_duplicate and before["state"] in cases.REVIEWABLE:
        # A repeat is refused before the registry is asked: a review that cannot pass reads no
        # owner data (nor writes a line in the registry's audit at every retry).
        async with portal.pool.acquire() as conn:
            earlier = await _same_event(portal, conn, before, printed, list(before["distinct_from"]))
        if earlier is not None:
            raise _possible_repeat(case_id, earlier)
    # The lookup waits for the registry: before the transaction, so that no row stays locked meanwhile.
    found = (await owners.lookup(portal.nc, portal.config.registry_lookup_subject, printed,
                                 portal.config.registry_timeout_s, case_id=case_id,
                                 requested_by=f"portal:{user.id}", purpose="plate_correction")
             if corrected and decision == "confirmed" else None)
    async with portal.pool.acquire() as conn:
        async with conn.transaction():
            case = await _locked_case(conn, case_id)
            if case["plate"] != before["plate"] or case["vehicle_class"] != before["vehicle_class"]:
                raise ActionError(409, f"vụ việc {case_id} vừa được thay đổi, mở lại để xác minh")
            distinct: list[str] = list(case["distinct_from"])
            if decision == "confirmed" and case["state"] in cases.REVIEWABLE:
                earlier = await _same_event(portal, conn, case, printed, distinct)
                if earlier is not None and not not_duplicate:
                    raise _possible_repeat(case_id, earlier)
                if earlier is not None:
                    distinct.append(earlier)
                    await _audit(conn, user, "not_duplicate", f"{case_id}/{earlier}",
                                 "xác nhận không trùng vụ việc đã lập", client)
            changes: dict = {}
            owner_row = None
            if found is not None:
                await store.forget_owner(conn, case_id)
                changes, owner_row = _registration(case, found)
                if owner_row is not None:
                    await store.insert_owner(conn, case_id, owner_row)
                    await _audit(conn, user, "owner_read", case_id, "tra cứu chủ xe theo biển số đã sửa", client)
            elif corrected and await store.forget_owner(conn, case_id):
                # Rejected with a corrected plate: the misread plate's owner has nothing to do with it.
                changes = {k: v for k, v in _registration(case, owners.Found())[0].items() if k != "unidentified_reason"}
            fits = cases.plate_fits_class(printed, case["vehicle_class"])
            if decision == "confirmed" and not fits:
                changes["plate_class_override"] = override
                await _audit(conn, user, "plate_class_override", case_id, override, client)
                metrics.PLATE_OVERRIDES.inc()
            try:
                await store.update_case(
                    conn, case_id, state=decision, plate=printed, plate_key=cases.plate_key(printed),
                    plate_corrected=case["plate_corrected"] or corrected, reviewer=user.id,
                    reviewer_agency=user.agency.id, reviewed_at=now, reject_reason=reason_label,
                    distinct_from=distinct, **changes)
            except store.TransitionRefused as exc:
                metrics.REFUSED.labels("review").inc()
                raise _state_refuses(case, f"không thể {decision}") from exc
            subject, event = materialise.reviewed_event(
                {**case, **changes, "plate": printed}, decision=decision, plate=printed, plate_corrected=corrected,
                reason=reason_label, reviewer=user.id, agency=user.agency.id, at=now, distinct_from=distinct)
            payload = codec.encode(event)
            await store.outbox_add(conn, event.id, subject, payload)
        next_case = await store.next_in_queue(conn, case_id)
    metrics.DECISIONS.labels(decision).inc()
    await portal.publish_outbox(event.id, subject, payload)
    return access.DecisionResult(case_id=case_id, state=decision, event_id=event.id, next_case=next_case)


async def not_duplicate(portal: Portal, user: User | None, case_id: str, *, reason: str = "",
                        client: str = "") -> access.DecisionResult:
    """A confirmed case notify holds as a possible duplicate is another event: say so (audited),
    and notify, told by a case.reviewed naming the earlier case in `distinct_from`, sends it."""
    user = require(user, "review")
    async with portal.pool.acquire() as conn, conn.transaction():
        case = await _locked_case(conn, case_id)
        if case["state"] != "confirmed" or case["notice_hold"] != "possible_duplicate" or not case["duplicate_of"]:
            raise ActionError(409, f"vụ việc {case_id} không bị tạm giữ vì có thể trùng")
        earlier = case["duplicate_of"]
        distinct = [*case["distinct_from"], earlier]
        await _audit(conn, user, "not_duplicate", f"{case_id}/{earlier}",
                     reason.strip() or "xác nhận không trùng vụ việc đã lập", client)
        await store.update_case(conn, case_id, distinct_from=distinct, notice_hold=None, notice_hold_detail="")
        subject, event = materialise.reviewed_event(
            case, decision="confirmed", plate=case["plate"], plate_corrected=case["plate_corrected"], reason=None,
            reviewer=case["reviewer"], agency=case["reviewer_agency"], at=case["reviewed_at"], distinct_from=distinct)
        # Another id than the review's: the CASES stream would drop a repeat of that one.
        event = msgspec.structs.replace(event, id=ids.event_id("rev", case_id, "confirmed", "distinct", *distinct))
        payload = codec.encode(event)
        await store.outbox_add(conn, event.id, subject, payload)
    await portal.publish_outbox(event.id, subject, payload)
    return access.DecisionResult(case_id=case_id, state="confirmed", event_id=event.id)


async def merge(portal: Portal, user: User | None, case_id: str, *, into: str, reason: str = "",
                client: str = "") -> access.DecisionResult:
    """Merge a case into the open case of the same event: it becomes `merged` (final), so it is
    never reviewed or notified on its own. Allowed from the review queue, and for a confirmed
    case only while notify holds its notices; the state machine enforces both (and audited)."""
    user = require(user, "review")
    if not into or into == case_id:
        raise ActionError(400, "chọn vụ việc để gộp vào (into), khác vụ việc này")
    now = datetime.now(timezone.utc)
    async with portal.pool.acquire() as conn:
        async with conn.transaction():
            # Both rows locked, in a fixed order, so that two merges of a pair cannot deadlock.
            rows = {c: await store.get_case(conn, c, lock=True) for c in sorted((case_id, into))}
            case, target = rows[case_id], rows[into]
            if case is None:
                raise ActionError(404, f"không có vụ việc {case_id}")
            if target is None:
                raise ActionError(404, f"không có vụ việc {into}")
            if case["state"] == "confirmed" and case["notice_hold"] is None:
                raise ActionError(409, f"vụ việc {case_id} đã xác nhận và có thể đã gửi thông báo: không thể gộp")
            await _audit(conn, user, "case_merged", f"{case_id}->{into}", reason.strip() or "gộp vụ việc trùng", client)
            try:
                await store.update_case(conn, case_id, state="merged", merged_into=into, merged_by=user.id,
                                        merged_at=now, notice_hold=None, notice_hold_detail="")
            except store.TransitionRefused as exc:
                metrics.REFUSED.labels("merge").inc()
                raise ActionError(409, f"không thể gộp {case_id} ('{cases.STATE_LABELS[case['state']]}') vào {into} "
                                       f"('{cases.STATE_LABELS[target['state']]}')") from exc
        next_case = await store.next_in_queue(conn, case_id)
    metrics.MERGED.inc()
    return access.DecisionResult(case_id=case_id, state="merged", event_id="", next_case=next_case)


async def resolve(portal: Portal, user: User | None, case_id: str, *, resolution: str) -> access.DecisionResult:
    user = require(user, "resolve")
    if resolution not in ("paid", "cancelled", "appealed_upheld"):
        raise ActionError(400, "resolution phải là paid, cancelled hoặc appealed_upheld")
    now = datetime.now(timezone.utc)
    async with portal.pool.acquire() as conn, conn.transaction():
        case = await _locked_case(conn, case_id)
        try:
            await store.update_case(conn, case_id, state="resolved", resolved_at=now, resolution=resolution)
        except store.TransitionRefused as exc:
            metrics.REFUSED.labels("resolve").inc()
            raise _state_refuses(case, "không thể đánh dấu đã xử lý") from exc
        subject, event = materialise.resolved_event(case, resolution=resolution, resolved_by=user.id,
                                                    agency=user.agency.id, at=now)
        payload = codec.encode(event)
        await store.outbox_add(conn, event.id, subject, payload)
    metrics.DECISIONS.labels("resolved").inc()
    await portal.publish_outbox(event.id, subject, payload)
    return access.DecisionResult(case_id=case_id, state="resolved", event_id=event.id)


APPEALABLE = frozenset({"confirmed", "notified", "warned"})


async def appeal(portal: Portal, user: User | None, case_id: str, *, note: str,
                 client: str = "") -> access.AppealResult:
    """Record that the owner appealed (khiếu nại) a case: audited; while the case is open the
    appeal stands, and the case is left out of training-data exports (dataset.py)."""
    user = require(user, "appeal")
    note = note.strip()
    if not note or len(note) > 500:
        raise ActionError(400, "ghi chú khiếu nại là bắt buộc (tối đa 500 ký tự)")
    now = datetime.now(timezone.utc)
    async with portal.pool.acquire() as conn, conn.transaction():
        case = await _locked_case(conn, case_id)
        if case["state"] not in APPEALABLE:
            raise _state_refuses(case, "không thể ghi nhận khiếu nại")
        if case["appeal_lodged_at"] is not None:
            raise ActionError(409, f"vụ việc {case_id} đã có khiếu nại ghi nhận lúc {case['appeal_lodged_at']:%Y-%m-%d %H:%M}")
        await store.update_case(conn, case_id, appeal_lodged_at=now, appeal_note=note)
        await audit.append(conn, user_id=user.id, agency=user.agency.id, role=user.role, action="appeal",
                           object=case_id, purpose=note, client=client)
    return access.AppealResult(case_id=case_id, appeal_lodged_at=now.isoformat())


def parse_period(start: str | None, end: str | None, tz) -> tuple[datetime, datetime]:
    """[start, end) from YYYY-MM-DD local dates; the last 30 days by default."""
    from datetime import date, time as dtime, timedelta
    try:
        end_day = date.fromisoformat(end) if end else datetime.now(tz).date()
        start_day = date.fromisoformat(start) if start else end_day - timedelta(days=29)
    except ValueError as exc:
        raise ActionError(400, "from/to phải có dạng YYYY-MM-DD") from exc
    if start_day > end_day or (end_day - start_day).days > 366:
        raise ActionError(400, "khoảng thời gian không hợp lệ (tối đa 366 ngày, from ≤ to)")
    return (datetime.combine(start_day, dtime(), tz), datetime.combine(end_day + timedelta(days=1), dtime(), tz))

