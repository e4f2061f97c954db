"""Sample cases, registrations and configuration for the notify tests."""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from proto import ids
from proto.v1 import CaseResolved, CaseReviewed, EvidenceRef, Location, Owner, Vehicle
from proto.v1.incident import IncidentCleared, IncidentDetected, LaneTraffic
from services.notify import config as notify_config
from services.notify.letter import Fonts

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "services" / "notify" / "notify.example.yaml"
FONTS = Fonts(regular=Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
              bold=Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"))
ICT = timezone(timedelta(hours=7))
VIOLATION_AT = datetime(2026, 11, 20, 7, 45, 12, tzinfo=ICT)
REVIEWED_AT = datetime(2026, 11, 21, 9, 45, 12, tzinfo=ICT)

ADDRESS = "Ngã tư Lạch Tray – Văn Cao, Ngô Quyền, Hải Phòng"


def example(**environ: str) -> notify_config.Config:
    return notify_config.load(EXAMPLE, environ=environ)


def evidence_ref(data: bytes, kind: str = "frame") -> EvidenceRef:
    digest = hashlib.sha256(data).hexdigest()
    return EvidenceRef(bucket="evidence", name=digest, sha256=digest, kind=kind, size=len(data),
                       captured_at=VIOLATION_AT)


def case(case_id: str = "CASE-2026-000123", *, camera: str = "hp-lach-tray-01", plate: str = "15A12345",
         vehicle_type: str = "car", decision: str = "confirmed", evidence: tuple[EvidenceRef, ...] = (),
         violation_type: str = "red_light") -> CaseReviewed:
    return CaseReviewed(
        id=ids.event_id("rev", case_id), camera_id=camera, occurred_at=REVIEWED_AT, case_id=case_id,
        violation_id=ids.event_id("vio", case_id), violation_type=violation_type, violation_at=VIOLATION_AT,
        location=Location(latitude=20.8449, longitude=106.6881, address=ADDRESS, commune_code="11311"),
        decision=decision, plate=plate, vehicle_type=vehicle_type, reviewer="csgt-hp-0042",
        agency="hp-csgt", reason="Biển số bị che khuất" if decision == "rejected" else None,
        evidence=evidence)


def resolved(reviewed: CaseReviewed, at: datetime | None = None) -> CaseResolved:
    return CaseResolved(
        id=ids.event_id("res", reviewed.case_id), camera_id=reviewed.camera_id,
        occurred_at=at or REVIEWED_AT + timedelta(days=30), case_id=reviewed.case_id,
        violation_id=reviewed.violation_id, plate=reviewed.plate, resolution="paid", resolved_by="csgt-hp-0042",
        agency=reviewed.agency)


def vehicle(plate: str = "15A12345", printed: str = "15A-123.45", vehicle_type: str = "car",
            colour: str = "white") -> Vehicle:
    return Vehicle(plate=plate, plate_printed=printed, plate_colour=colour, vehicle_type=vehicle_type,
                   brand="Toyota", colour="silver", registration_date=date(2021, 3, 4), inspection_status="valid")


def owner(*, commune: str = "11311", email: str = "tran.thi.hue@example.vn", phone: str = "0912345678",
          name: str = "Trần Thị Huệ", address: str = "Số 18 ngõ 45 Lạch Tray, phường Ngô Quyền, Hải Phòng",
          national_id: str = "031190012345") -> Owner:
    return Owner(kind="person", name=name, national_id=national_id, address=address, commune_code=commune,
                 province="Hải Phòng", phone=phone, email=email)


# --- incidents ------------------------------------------------------------------------------------
DETECTED_AT = datetime(2026, 11, 20, 7, 46, 42, tzinfo=ICT)


def incident(incident_type: str = "stopped_vehicle", *, camera: str = "hp-lach-tray-01", severity: str = "warning",
             incident_id: str | None = None, lane: str | None = "middle", vehicle_class: str | None = "car",
             zone: str | None = None, traffic: LaneTraffic | None = None, duration_s: float = 90.0) -> IncidentDetected:
    incident_id = incident_id or ids.event_id("incident", camera, incident_type, DETECTED_AT.isoformat())
    return IncidentDetected(
        id=ids.event_id("inc", incident_id, "detected"), incident_id=incident_id, camera_id=camera,
        occurred_at=DETECTED_AT - timedelta(seconds=duration_s), detected_at=DETECTED_AT, type=incident_type,
        severity=severity, location=Location(latitude=20.8449, longitude=106.6881, address=ADDRESS,
                                             commune_code="11311"),
        lane=lane, zone=zone, track_ids=(412,) if vehicle_class else (), vehicle_class=vehicle_class,
        duration_s=duration_s, traffic=traffic)


def incident_cleared(detected: IncidentDetected, *, after_s: float = 300.0, reason: str = "resolved") -> IncidentCleared:
    return IncidentCleared(
        id=ids.event_id("inc", detected.incident_id, "cleared"), incident_id=detected.incident_id,
        camera_id=detected.camera_id, occurred_at=detected.detected_at + timedelta(seconds=after_s),
        type=detected.type, started_at=detected.occurred_at, duration_s=detected.duration_s + after_s, reason=reason)
