"""Violations: as detected by track, then identified (or not) by the registry; hotlist hits.

`ViolationIdentified` carries owner personal data: only the police account may import it
(DESIGN.md §5). Every other event here is free of personal data.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from proto.v1.common import (
    CameraId,
    EventId,
    EvidenceRef,
    Location,
    PlateText,
    Timestamp,
    ViolationType,
)


class Measurement(msgspec.Struct, frozen=True, kw_only=True):
    """What the rule measured (speed, dwell...) against its limit."""

    value: float
    unit: Literal["km/h", "s", "frames"]
    limit: float | None = None
    tolerance: float | None = None
    phase: Literal["red", "amber", "green", "off", "flashing"] | None = None  # red_light: the signal phase at the crossing
    phase_age_s: Annotated[float, Meta(ge=0)] | None = None  # how long that phase had been showing


class ViolationDetected(msgspec.Struct, frozen=True, kw_only=True):
    id: EventId
    camera_id: CameraId
    occurred_at: Timestamp
    type: ViolationType
    location: Location
    vehicle_class: str
    vehicle_colour: str | None = None
    track_id: Annotated[int, Meta(ge=0)]
    plate: PlateText | None = None  # best read voted over the track; None when nothing was read
    measurement: Measurement | None = None
    rule: str = ""  # the scene element that fired: stop line, lane, zone or trap id
    evidence: tuple[EvidenceRef, ...] = ()
    detected_at: Timestamp | None = None
    # The rule's parameters as configured in the scene (lane, limit, zone...), for the reviewer.
    parameters: dict[str, str | float] = {}
    # Whether the frames were still in the FRAMES stream when the violation was judged: evidence
    # is never invented, so "expired" or "partial" says some frames were gone (see evidence_missing).
    evidence_status: Literal["complete", "partial", "expired", "not_collected"] = "not_collected"
    evidence_missing: tuple[Annotated[int, Meta(ge=0)], ...] = ()  # FRAMES stream sequences no longer there


class Vehicle(msgspec.Struct, frozen=True, kw_only=True):
    plate: str  # normalised, [0-9A-Z] only
    plate_printed: str  # as on the registration, e.g. '30A-123.45'
    plate_colour: Literal["white", "yellow", "blue", "red", "other"] = "white"
    vehicle_type: str
    brand: str = ""
    colour: str = ""
    registration_date: date | None = None
    inspection_status: Literal["valid", "expired", "held", "not_required", "unknown"] = "unknown"


class Owner(msgspec.Struct, frozen=True, kw_only=True):
    kind: Literal["person", "organisation"]
    name: str
    national_id: str = ""
    address: str = ""
    commune_code: str = ""
    province: str = ""
    phone: str = ""
    email: str = ""


class ViolationIdentified(msgspec.Struct, frozen=True, kw_only=True):
    id: EventId
    camera_id: CameraId
    occurred_at: Timestamp
    violation: ViolationDetected
    vehicle: Vehicle
    owner: Owner
    match: Literal["exact", "near"]
    matched_plate: str  # the registered plate that matched; differs from the read when match is "near"
    mismatches: tuple[Literal["vehicle_type", "colour"], ...] = ()  # non-empty: a possibly cloned plate


class ViolationUnidentified(msgspec.Struct, frozen=True, kw_only=True):
    id: EventId
    camera_id: CameraId
    occurred_at: Timestamp
    violation: ViolationDetected
    reason: Literal["no_read", "invalid_format", "no_record"]
    candidates: tuple[str, ...] = ()  # near-match plates that were not promoted


class HotlistHit(msgspec.Struct, frozen=True, kw_only=True):
    id: EventId
    camera_id: CameraId
    occurred_at: Timestamp
    plate: str
    read: PlateText
    reason: str
    agency: str
    location: Location | None = None
    detection_id: str = ""
    frame_stream_seq: int | None = None
