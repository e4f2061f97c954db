"""Events in, case rows and events out: the portal's domain rules without I/O.

A case is created from the registry's identified / unidentified violation; police decisions
become CaseReviewed / CaseResolved events. Kept pure so that the rules are tested without
NATS or PostgreSQL, and the consumers stay thin.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from proto import ids, subjects
from proto.v1 import CaseResolved, CaseReviewed, ViolationIdentified, ViolationUnidentified
from proto.v1.common import EvidenceRef, Location
from services.portal import cases


def _violation_columns(event: ViolationIdentified | ViolationUnidentified) -> dict[str, Any]:
    v = event.violation
    plate = v.plate
    return {
        "violation_id": v.id,
        "source_event_id": event.id,
        "camera_id": v.camera_id,
        "violation_type": v.type,
        "violation_at": v.occurred_at,
        "detected_at": v.detected_at,
        "latitude": v.location.latitude,
        "longitude": v.location.longitude,
        "address": v.location.address,
        "place_commune": v.location.commune_code,
        "vehicle_class": v.vehicle_class,
        "vehicle_colour": v.vehicle_colour,
        "measurement": msgspec.json.encode(v.measurement).decode() if v.measurement else None,
        "rule": v.rule,
        "plate_read": plate.text if plate else None,
        "plate_confidence": plate.confidence if plate else None,
        "plate_alternatives": msgspec.json.encode([a.text for a in plate.alternatives] if plate else []).decode(),
        "evidence": msgspec.json.encode(list(v.evidence)).decode(),
    }


def case_from_identified(event: ViolationIdentified) -> tuple[dict[str, Any], dict[str, Any]]:
    """(case columns, owner columns). The plate shown is the registered one that matched."""
    row = _violation_columns(event)
    row.update(
        state="identified",
        plate=event.vehicle.plate_printed,
        plate_key=cases.plate_key(event.vehicle.plate),
        plate_colour=event.vehicle.plate_colour,
        vehicle_type=event.vehicle.vehicle_type,
        brand=event.vehicle.brand,
        colour=event.vehicle.colour,
        inspection_status=event.vehicle.inspection_status,
        match=event.match,
        mismatches=list(event.mismatches),
        owner_commune=event.owner.commune_code,
    )
    o = event.owner
    owner = {"kind": o.kind, "name": o.name, "national_id": o.national_id, "address": o.address,
             "commune_code": o.commune_code, "province": o.province, "phone": o.phone, "email": o.email}
    return row, owner


def case_from_unidentified(event: ViolationUnidentified) -> dict[str, Any]:
    row = _violation_columns(event)
    plate = event.violation.plate
    row.update(
        state="unidentified",
        plate=plate.text if plate and plate.format_valid else "",
        plate_key=cases.plate_key(plate.text) if plate and plate.format_valid else "",
        vehicle_type=event.violation.vehicle_class,
        unidentified_reason=event.reason,
    )
    return row


def _location(case: dict[str, Any]) -> Location:
    return Location(latitude=case["latitude"], longitude=case["longitude"], address=case["address"],
                    commune_code=case["place_commune"])


def evidence_refs(case: dict[str, Any]) -> tuple[EvidenceRef, ...]:
    raw = case["evidence"]
    return msgspec.json.decode(raw if isinstance(raw, (str, bytes)) else msgspec.json.encode(raw),
                               type=tuple[EvidenceRef, ...])


def reviewed_event(case: dict[str, Any], *, decision: str, plate: str, plate_corrected: bool, reason: str | None,
                   reviewer: str, agency: str, at: datetime,
                   distinct_from: list[str] | tuple[str, ...] = ()) -> tuple[str, CaseReviewed]:
    """(subject, event). One review per case (the state machine allows one), hence the id."""
    event = CaseReviewed(
        id=ids.event_id("rev", case["case_id"], decision),
        camera_id=case["camera_id"],
        occurred_at=at,
        case_id=case["case_id"],
        violation_id=case["violation_id"],
        violation_type=case["violation_type"],
        violation_at=case["violation_at"],
        location=_location(case),
        decision=decision,  # type: ignore[arg-type]
        plate=plate,
        plate_corrected=plate_corrected,
        vehicle_type=case["vehicle_type"],
        reviewer=reviewer,
        agency=agency,
        reason=reason,
        evidence=evidence_refs(case),
        distinct_from=tuple(distinct_from),
    )
    return subjects.case_reviewed(case["camera_id"], decision), event


def resolved_event(case: dict[str, Any], *, resolution: str, resolved_by: str, agency: str,
                   at: datetime) -> tuple[str, CaseResolved]:
    event = CaseResolved(
        id=ids.event_id("res", case["case_id"]),
        camera_id=case["camera_id"],
        occurred_at=at,
        case_id=case["case_id"],
        violation_id=case["violation_id"],
        plate=case["plate"],
        resolution=resolution,  # type: ignore[arg-type]
        resolved_by=resolved_by,
        agency=agency,
    )
    return subjects.case_resolved(case["camera_id"]), event
