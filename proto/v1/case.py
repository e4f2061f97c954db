"""Police decisions on cases. No owner personal data: notify looks the owner up by request."""

from __future__ import annotations

from typing import Literal

import msgspec

from proto.v1.common import CameraId, EventId, EvidenceRef, Location, Timestamp, ViolationType


class CaseReviewed(msgspec.Struct, frozen=True, kw_only=True):
    id: EventId
    camera_id: CameraId
    occurred_at: Timestamp  # when the officer decided
    case_id: str
    violation_id: str
    violation_type: ViolationType
    violation_at: Timestamp
    location: Location
    decision: Literal["confirmed", "rejected"]
    plate: str  # as confirmed, after any correction
    plate_corrected: bool = False
    vehicle_type: str = ""
    reviewer: str
    agency: str
    reason: str | None = None  # required when rejected
    evidence: tuple[EvidenceRef, ...] = ()
    # Cases of the same plate, violation and place that the reviewer judged to be other events
    # (notify otherwise holds a second notice within its duplicate window).
    distinct_from: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.decision == "rejected" and not self.reason:
            raise ValueError("a rejected case needs a reason")


class CaseResolved(msgspec.Struct, frozen=True, kw_only=True):
    id: EventId
    camera_id: CameraId
    occurred_at: Timestamp
    case_id: str
    violation_id: str
    plate: str
    resolution: Literal["paid", "cancelled", "appealed_upheld"]
    resolved_by: str
    agency: str
