"""Who may do what, and which fields each role receives (DESIGN.md §5).

One table of permissions and one function per view, so that "the transport department never
receives owner data" is decided in one place and tested per endpoint and role. Views are msgspec
Structs: the OpenAPI document is generated from the same types the handlers return.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

from services.portal import cases, privacy
from services.portal.agencies import Agency, User

# permission -> roles
PERMISSIONS: dict[str, frozenset[str]] = {
    "cases": frozenset({"police", "commune_police", "operations_centre"}),   # list and read cases
    "owner": frozenset({"police", "commune_police"}),                        # owner personal data
    "evidence": frozenset({"police", "commune_police", "operations_centre"}),
    "review": frozenset({"police"}),                                         # confirm / reject, correct the plate
    "resolve": frozenset({"police"}),
    "stats": frozenset({"police", "operations_centre", "transport"}),        # statistics, counts, cameras, report
    "uptime": frozenset({"police", "operations_centre", "transport"}),       # camera uptime and outages
    "holds": frozenset({"police", "transport"}),                             # vehicle-inspection holds
    "audit": frozenset({"police"}),
    "appeal": frozenset({"police"}),                                         # record an owner's appeal
    "dataset": frozenset({"police"}),                                        # export reviewed cases as labels
    # The operations board (issue 19): incidents, camera health and signal phases; the centre and
    # the transport department act on incidents (acknowledge, close), the police look on.
    "board": frozenset({"police", "operations_centre", "transport"}),
    "incidents": frozenset({"operations_centre", "transport"}),
    # Live camera images on the board: the roles that may see evidence images without owner
    # data (DESIGN §5); the transport department sees each camera's health and lights, no picture.
    "camera_images": frozenset({"police", "operations_centre"}),
}


def can(user: User | None, permission: str) -> bool:
    return user is not None and user.role in PERMISSIONS[permission]


def commune_scope(user: User) -> list[str] | None:
    """The owner communes whose cases this user may see; None means every case."""
    return list(user.agency.communes) if user.role == "commune_police" else None


def in_scope(user: User, case: dict[str, Any]) -> bool:
    scope = commune_scope(user)
    return scope is None or case["owner_commune"] in scope


# --- views ----------------------------------------------------------------------------------------
class EvidenceView(msgspec.Struct, kw_only=True):
    sha256: str
    kind: str
    size: int
    content_type: str
    captured_at: datetime | None = None
    url: str


class OwnerView(msgspec.Struct, kw_only=True):
    kind: str
    name: str
    national_id: str
    address: str
    commune_code: str
    province: str
    phone: str
    email: str


class HistoryView(msgspec.Struct, kw_only=True):
    from_state: str | None
    to_state: str
    at: datetime


class CaseView(msgspec.Struct, kw_only=True):
    case_id: str
    state: str
    state_label: str
    violation_id: str
    violation_type: str
    violation_label: str
    violation_at: datetime
    camera_id: str
    address: str
    latitude: float
    longitude: float
    place_commune: str
    vehicle_class: str
    plate: str
    plate_read: str | None
    plate_confidence: float | None
    plate_alternatives: list[str]
    plate_corrected: bool
    plate_colour: str
    vehicle_type: str
    brand: str
    colour: str
    inspection_status: str
    match: str | None
    mismatches: list[str]
    unidentified_reason: str | None
    measurement: dict[str, Any] | None
    evidence: list[EvidenceView]
    reviewer: str | None
    reviewer_agency: str | None
    reviewed_at: datetime | None
    reject_reason: str | None
    notified_at: datetime | None
    respond_by: datetime | None
    resolved_at: datetime | None
    resolution: str | None
    next_states: list[str]
    # One event, one case: the open case this one may repeat, the case it was merged into, and
    # the cases the reviewer judged distinct despite the same plate, violation and place.
    duplicate_of: str | None = None
    merged_into: str | None = None
    distinct_from: list[str] = []
    # notify holds the notices: "no_legal_basis" (cần căn cứ pháp lý) or "possible_duplicate".
    notice_hold: str | None = None
    notice_hold_label: str | None = None
    notice_hold_detail: str = ""
    # The reviewer's reason for confirming a plate of another format than the vehicle class's.
    plate_class_override: str | None = None
    # Only for the roles with the "owner" permission, in the single-case view (audited).
    owner_commune: str | None = None
    owner: OwnerView | None = None
    history: list[HistoryView] | None = None


class CaseList(msgspec.Struct, kw_only=True):
    total: int
    limit: int
    offset: int
    items: list[CaseView]


class PublicEvidence(msgspec.Struct, kw_only=True):
    sha256: str
    kind: str
    url: str


class PublicCase(msgspec.Struct, kw_only=True):
    """What the traffic police website shows a citizen: never the owner."""

    case_id: str
    plate: str
    plate_colour: str
    vehicle_type: str
    violation_type: str
    violation: str
    violation_at: datetime
    place: str
    state: str
    state_label: str
    detecting_unit: str
    resolving_unit: str
    resolving_phone: str
    resolving_address: str
    evidence: list[PublicEvidence]
    resolving_hours: str = ""


class PublicLookup(msgspec.Struct, kw_only=True):
    plate: str
    items: list[PublicCase]


class Me(msgspec.Struct, kw_only=True):
    user: str
    name: str
    agency: str
    agency_name: str
    role: str
    permissions: list[str]


class Problem(msgspec.Struct, kw_only=True):
    error: str


class ReviewRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    decision: Literal["confirmed", "rejected"]
    plate: str | None = None   # the corrected plate, as printed or bare (e.g. 15A12345)
    reason: str | None = None  # a code from /api/reject-reasons; required to reject
    # Confirm a plate whose format is not the vehicle class's (a car plate on a motorbike): why (audited).
    plate_override_reason: str | None = None
    # Confirm a case that may repeat an open one as a distinct event (audited).
    not_duplicate: bool = False


class NotDuplicateRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    reason: str = ""  # why this is another event (audited)


class MergeRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    into: str  # the open case of the same event
    reason: str = ""


class ResolveRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    resolution: Literal["paid", "cancelled", "appealed_upheld"]


class AppealRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    note: str  # what the owner contests, as received (e.g. the appeal's reference and date)


class AppealResult(msgspec.Struct, kw_only=True):
    case_id: str
    appeal_lodged_at: str


class DecisionResult(msgspec.Struct, kw_only=True):
    case_id: str
    state: str
    event_id: str
    next_case: str | None = None


class RejectReasonView(msgspec.Struct, kw_only=True):
    code: str
    label: str


class ViolationStat(msgspec.Struct, kw_only=True):
    key: str
    total: int
    confirmed: int
    rejected: int
    awaiting_review: int


class CountStat(msgspec.Struct, kw_only=True):
    camera_id: str
    day: str
    vehicle_class: str
    vehicles: int


class CameraView(msgspec.Struct, kw_only=True):
    camera_id: str
    state: str
    reason: str
    occurred_at: datetime
    state_since: datetime
    fps_in: float
    fps_out: float
    frames_dropped: int
    decode_errors: int
    reconnects: int
    last_frame_age_s: float | None
    changes: int


class HoldView(msgspec.Struct, kw_only=True):
    case_id: str
    plate: str
    plate_colour: str
    vehicle_type: str
    violation_type: str
    violation_at: datetime
    warned_at: datetime | None


class AuditView(msgspec.Struct, kw_only=True):
    seq: int
    at: datetime
    user_id: str
    agency: str
    role: str
    action: str
    object: str
    purpose: str
    client: str
    hash: str


def _json(value: Any) -> Any:
    return msgspec.json.decode(value) if isinstance(value, (str, bytes)) else value


def evidence_views(case: dict[str, Any], url_prefix: str) -> list[EvidenceView]:
    return [EvidenceView(sha256=e["sha256"], kind=e["kind"], size=e["size"], content_type=e.get("content_type", "image/jpeg"),
                         captured_at=msgspec.convert(e.get("captured_at"), datetime | None),
                         url=f"{url_prefix}/cases/{case['case_id']}/evidence/{e['sha256']}")
            for e in _json(case["evidence"])]


def case_view(user: User, case: dict[str, Any], *, owner: dict[str, Any] | None = None,
              history: list[dict[str, Any]] | None = None, url_prefix: str = "/api") -> CaseView:
    """The case as this user may see it; `owner` is dropped unless the role may read it."""
    sees_owner = can(user, "owner")
    return CaseView(
        case_id=case["case_id"], state=case["state"], state_label=cases.STATE_LABELS[case["state"]],
        violation_id=case["violation_id"], violation_type=case["violation_type"],
        violation_label=cases.VIOLATION_LABELS.get(case["violation_type"], case["violation_type"]),
        violation_at=case["violation_at"], camera_id=case["camera_id"], address=case["address"],
        latitude=case["latitude"], longitude=case["longitude"], place_commune=case["place_commune"],
        vehicle_class=case["vehicle_class"], plate=case["plate"], plate_read=case["plate_read"],
        plate_confidence=case["plate_confidence"], plate_alternatives=list(_json(case["plate_alternatives"])),
        plate_corrected=case["plate_corrected"], plate_colour=case["plate_colour"], vehicle_type=case["vehicle_type"],
        brand=case["brand"], colour=case["colour"], inspection_status=case["inspection_status"], match=case["match"],
        mismatches=list(case["mismatches"]), unidentified_reason=case["unidentified_reason"],
        measurement=_json(case["measurement"]) if case["measurement"] else None,
        evidence=evidence_views(case, url_prefix) if can(user, "evidence") else [],
        reviewer=case["reviewer"], reviewer_agency=case["reviewer_agency"], reviewed_at=case["reviewed_at"],
        reject_reason=case["reject_reason"], notified_at=case["notified_at"], respond_by=case["respond_by"],
        resolved_at=case["resolved_at"], resolution=case["resolution"],
        next_states=list(cases.next_states(case["state"])),
        duplicate_of=case.get("duplicate_of"), merged_into=case.get("merged_into"),
        distinct_from=list(case.get("distinct_from") or []), notice_hold=case.get("notice_hold"),
        notice_hold_label=cases.HOLD_LABELS.get(case.get("notice_hold") or ""),
        notice_hold_detail=case.get("notice_hold_detail") or "",
        plate_class_override=case.get("plate_class_override"),
        owner_commune=case["owner_commune"] if sees_owner else None,
        owner=OwnerView(**owner) if (owner is not None and sees_owner) else None,
        history=[HistoryView(**h) for h in history] if history is not None else None,
    )


def public_view(case: dict[str, Any], resolver: Agency | None, url_prefix: str = "/api/public") -> PublicCase:
    return PublicCase(
        case_id=case["case_id"], plate=case["plate"],
        plate_colour=cases.PLATE_COLOUR_LABELS.get(case["plate_colour"], case["plate_colour"]),
        vehicle_type=cases.VEHICLE_LABELS.get(case["vehicle_type"], case["vehicle_type"]),
        violation_type=case["violation_type"],
        violation=cases.VIOLATION_LABELS.get(case["violation_type"], case["violation_type"]),
        violation_at=case["violation_at"], place=case["address"], state=case["state"],
        state_label=cases.STATE_LABELS[case["state"]],
        detecting_unit=f"Hệ thống camera giám sát – camera {case['camera_id']}",
        resolving_unit=resolver.full_name if resolver else "",
        resolving_hours=resolver.working_hours if resolver else "",
        resolving_phone=resolver.phone if resolver else "",
        resolving_address=resolver.address if resolver else "",
        evidence=[PublicEvidence(sha256=e["sha256"], kind=e["kind"],
                                 url=f"{url_prefix}/cases/{case['case_id']}/evidence/{e['sha256']}")
                  for e in _json(case["evidence"]) if privacy.has_public_copy(e)],
    )


# --- the operations board ---------------------------------------------------------------------------
class IncidentEvidenceView(msgspec.Struct, kw_only=True):
    sha256: str
    kind: str
    size: int
    captured_at: datetime | None = None
    url: str | None = None  # None: the role may not see evidence images


class LaneTrafficView(msgspec.Struct, kw_only=True):
    lane: str
    occupancy: float
    queue_vehicles: int
    vehicles: int
    mean_speed: float | None = None
    speed_unit: str = "px/s"
    level: str
    level_label: str


class IncidentView(msgspec.Struct, kw_only=True):
    incident_id: str
    camera_id: str
    type: str
    type_label: str
    severity: str
    severity_label: str
    # new (nobody has acknowledged it), acknowledged, closed; `cleared_at` says whether the
    # condition has ended on the road, independently of the operators.
    status: str
    detected: bool  # false: an update or clearing arrived before the detection (shown as known so far)
    address: str
    latitude: float | None
    longitude: float | None
    lane: str | None
    zone: str | None
    occurred_at: datetime | None
    detected_at: datetime | None
    updated_at: datetime | None
    cleared_at: datetime | None
    clear_reason: str | None
    clear_label: str | None
    duration_s: float
    track_ids: list[int]
    vehicle_class: str | None
    traffic: LaneTrafficView | None
    last_change: str
    evidence: list[IncidentEvidenceView]
    evidence_status: str
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    acknowledge_note: str | None
    closed_at: datetime | None
    closed_by: str | None
    close_note: str | None
    changed_at: datetime
    acknowledged_by_name: str | None = None  # the person, from the agencies file
    closed_by_name: str | None = None


class IncidentNote(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    note: str = ""  # acknowledging: optional; closing: required (what was done)


class SignalView(msgspec.Struct, kw_only=True):
    intersection_id: str
    head: str
    phase: str
    phase_label: str
    source: str
    occurred_at: datetime
    phase_since: datetime


class CameraTile(msgspec.Struct, kw_only=True):
    camera_id: str
    state: str
    state_label: str
    reason: str
    occurred_at: datetime
    state_since: datetime
    fps_out: float
    last_frame_age_s: float | None
    signals: list[SignalView]
    frame_url: str | None = None  # None: the role may not see camera images


class BoardSnapshot(msgspec.Struct, kw_only=True):
    cameras: list[CameraTile]
    incidents: list[IncidentView]
    can_act: bool
    can_see_images: bool


def incident_view(user: User, row: dict[str, Any], url_prefix: str = "/api", names: Any = None) -> IncidentView:
    """`names`: user id -> the person's name (Directory.user_name), for who acknowledged and closed."""
    from services.portal import incidents  # noqa: PLC0415 (labels; incidents imports nothing of access)

    images = can(user, "evidence")
    traffic = _json(row["traffic"]) if row["traffic"] else None
    status = "closed" if row["closed_at"] else "acknowledged" if row["acknowledged_at"] else "new"
    return IncidentView(
        incident_id=row["incident_id"], camera_id=row["camera_id"], type=row["type"],
        type_label=incidents.TYPE_LABELS.get(row["type"], row["type"]), severity=row["severity"],
        severity_label=incidents.SEVERITY_LABELS.get(row["severity"], row["severity"]), status=status,
        detected=row["detected"], address=row["address"], latitude=row["latitude"], longitude=row["longitude"],
        lane=row["lane"], zone=row["zone"], occurred_at=row["occurred_at"], detected_at=row["detected_at"],
        updated_at=row["updated_at"], cleared_at=row["cleared_at"], clear_reason=row["clear_reason"],
        clear_label=incidents.CLEAR_LABELS.get(row["clear_reason"] or ""), duration_s=row["duration_s"],
        track_ids=list(row["track_ids"]), vehicle_class=row["vehicle_class"],
        traffic=LaneTrafficView(**traffic, level_label=incidents.LEVEL_LABELS.get(traffic["level"], traffic["level"]))
        if traffic else None,
        last_change=row["last_change"],
        evidence=[IncidentEvidenceView(
            sha256=e["sha256"], kind=e["kind"], size=e["size"], captured_at=msgspec.convert(e.get("captured_at"), datetime | None),
            url=f"{url_prefix}/incidents/{row['incident_id']}/evidence/{e['sha256']}" if images else None)
            for e in _json(row["evidence"])],
        evidence_status=row["evidence_status"], acknowledged_at=row["acknowledged_at"],
        acknowledged_by=row["acknowledged_by"], acknowledge_note=row["acknowledge_note"], closed_at=row["closed_at"],
        closed_by=row["closed_by"], close_note=row["close_note"], changed_at=row["changed_at"],
        acknowledged_by_name=names(row["acknowledged_by"]) if names else None,
        closed_by_name=names(row["closed_by"]) if names else None)


PHASE_LABELS = {"red": "Đỏ", "amber": "Vàng", "green": "Xanh", "off": "Tắt", "flashing": "Nhấp nháy",
                "unknown": "Không rõ"}
CAMERA_STATE_LABELS = {"online": "Hoạt động", "degraded": "Suy giảm", "offline": "Mất tín hiệu"}


def camera_tile(user: User, health: dict[str, Any], signals: list[dict[str, Any]],
                url_prefix: str = "/api") -> CameraTile:
    return CameraTile(
        camera_id=health["camera_id"], state=health["state"],
        state_label=CAMERA_STATE_LABELS.get(health["state"], health["state"]), reason=health["reason"],
        occurred_at=health["occurred_at"], state_since=health["state_since"], fps_out=health["fps_out"],
        last_frame_age_s=health["last_frame_age_s"],
        signals=[SignalView(intersection_id=s["intersection_id"], head=s["head"], phase=s["phase"],
                            phase_label=PHASE_LABELS.get(s["phase"], s["phase"]), source=s["source"],
                            occurred_at=s["occurred_at"], phase_since=s["phase_since"])
                 for s in signals if s["camera_id"] == health["camera_id"]],
        frame_url=f"{url_prefix}/cameras/{health['camera_id']}/frame" if can(user, "camera_images") else None)
