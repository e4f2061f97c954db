"""Incidents: something is happening on a road now (a stopped vehicle, a pedestrian on the
carriageway, a vehicle against the traffic, congestion), found by track from the same tracks and
scenes as violations. No personal data: the operations centre and transport read them.

One incident per event, not one per frame: `incident.detected` once when the condition has held
long enough, `incident.updated` when it changes materially (congestion level, duration steps),
`incident.cleared` once when it ends. All three carry the same `incident_id`.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from proto.v1.common import CameraId, EventId, EvidenceRef, Location, Timestamp

IncidentType = Literal["stopped_vehicle", "pedestrian_on_carriageway", "wrong_way_driving", "congestion"]
CongestionLevel = Literal["free", "moderate", "heavy", "jammed"]
Severity = Literal["info", "warning", "critical"]
IncidentId = Annotated[str, Meta(min_length=1, max_length=128, description="Deterministic; shared by the "
                                                                           "detected, updated and cleared events")]
NonNegative = Annotated[float, Meta(ge=0)]


class LaneTraffic(msgspec.Struct, frozen=True, kw_only=True):
    """Congestion on one lane over the incident's measuring window."""

    lane: str  # the scene's lane id
    occupancy: Annotated[float, Meta(ge=0, le=1)]  # share of the lane's area covered by vehicles
    queue_vehicles: Annotated[int, Meta(ge=0)]  # vehicles standing in a row back from the lane's head
    vehicles: Annotated[int, Meta(ge=0)]  # vehicles in the lane
    mean_speed: NonNegative | None = None  # None when no vehicle moved measurably
    speed_unit: Literal["px/s", "km/h"] = "px/s"  # km/h only where the scene is calibrated
    level: CongestionLevel


class IncidentDetected(msgspec.Struct, frozen=True, kw_only=True):
    id: EventId
    incident_id: IncidentId
    camera_id: CameraId
    occurred_at: Timestamp  # when the condition began (the first frame that showed it)
    detected_at: Timestamp  # when it had held long enough to be reported
    type: IncidentType
    severity: Severity = "warning"
    location: Location
    lane: str | None = None  # the scene's lane, where the incident is in one
    zone: str | None = None  # the scene's zone (a carriageway where pedestrians are forbidden...)
    track_ids: tuple[Annotated[int, Meta(ge=0)], ...] = ()  # the tracks involved (not for congestion)
    vehicle_class: str | None = None  # stopped vehicle / wrong way: the vehicle's class
    duration_s: NonNegative  # how long the condition had held at detected_at
    traffic: LaneTraffic | None = None  # congestion: the lane's measures
    # The scene's parameters that fired (dwell limit, thresholds...), for the operator.
    parameters: dict[str, str | float] = {}
    evidence: tuple[EvidenceRef, ...] = ()  # frames as for violations, addressed by SHA-256
    evidence_status: Literal["complete", "partial", "expired", "not_collected"] = "not_collected"


class IncidentUpdated(msgspec.Struct, frozen=True, kw_only=True):
    id: EventId
    incident_id: IncidentId
    camera_id: CameraId
    occurred_at: Timestamp  # when the change was seen
    type: IncidentType
    severity: Severity = "warning"
    duration_s: NonNegative  # since the condition began
    traffic: LaneTraffic | None = None
    track_ids: tuple[Annotated[int, Meta(ge=0)], ...] = ()
    change: str = ""  # what changed, e.g. "level heavy -> jammed"


class IncidentCleared(msgspec.Struct, frozen=True, kw_only=True):
    id: EventId
    incident_id: IncidentId
    camera_id: CameraId
    occurred_at: Timestamp  # when the condition ended (the first frame without it)
    type: IncidentType
    started_at: Timestamp
    duration_s: NonNegative
    # resolved: the condition ended on the road; track_lost: the vehicle left the view or was
    # lost; stream_break: the camera's stream broke (a discontinuity), so nothing more is known.
    reason: Literal["resolved", "track_lost", "stream_break"] = "resolved"
