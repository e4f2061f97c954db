"""Version 1 of the event contract.

`MESSAGES` lists every v1 message with the subject it travels on and the stream that keeps it;
the JSON Schemas, the AsyncAPI document and the golden-sample tests are all driven by it.
"""

from __future__ import annotations

import msgspec

from proto.v1.audit import AuditAnchored
from proto.v1.case import CaseResolved, CaseReviewed
from proto.v1.common import Box, EvidenceRef, Location, PlateAlternative, PlateText, Point
from proto.v1.dead_letter import DeadLetter
from proto.v1.detection import DetectedObject, DetectedPlate, DetectionMade, FrameRef
from proto.v1.frame import FrameMeta
from proto.v1.incident import IncidentCleared, IncidentDetected, IncidentUpdated, LaneTraffic
from proto.v1.notice import NoticeFailed, NoticeHeld, NoticeSent
from proto.v1.registry import OwnerLookupReply, OwnerLookupRequest
from proto.v1.telemetry import CameraStatus, SignalPhase, VehicleCount, VehiclesCounted
from proto.v1.violation import (
    HotlistHit,
    Measurement,
    Owner,
    Vehicle,
    ViolationDetected,
    ViolationIdentified,
    ViolationUnidentified,
)


class Message(msgspec.Struct, frozen=True, kw_only=True):
    name: str  # file name of the schema and golden samples
    type: type
    subject: str  # with {placeholders}
    stream: str
    summary: str
    personal_data: bool = False


MESSAGES: tuple[Message, ...] = (
    Message(name="frame_captured", type=FrameMeta, subject="traffic.frame.captured.v1.{camera_id}", stream="FRAMES",
            summary="A sampled camera frame. Payload: the JPEG bytes; this metadata travels in the headers "
                    "Nats-Msg-Id, Camera-Id, Frame-Seq, Captured-At, Width, Height, and Discontinuity "
                    "(start, reconnect or loop) on the first frame after a break in the stream."),
    Message(name="detection_made", type=DetectionMade, subject="traffic.detection.made.v1.{camera_id}",
            stream="DETECTIONS", summary="Vehicles and plates found in one frame."),
    Message(name="violation_detected", type=ViolationDetected,
            subject="traffic.violation.detected.v1.{camera_id}.{type}", stream="VIOLATIONS",
            summary="A rule fired on a track, with the best plate read and the evidence objects."),
    Message(name="violation_identified", type=ViolationIdentified,
            subject="traffic.violation.identified.v1.{camera_id}.{type}", stream="VIOLATIONS",
            summary="The registry found the vehicle and its owner. Contains personal data: police only.",
            personal_data=True),
    Message(name="violation_unidentified", type=ViolationUnidentified,
            subject="traffic.violation.unidentified.v1.{camera_id}.{type}", stream="VIOLATIONS",
            summary="No usable plate read, or no registration record for it."),
    Message(name="hotlist_hit", type=HotlistHit, subject="traffic.hotlist.hit.v1.{camera_id}", stream="VIOLATIONS",
            summary="A wanted vehicle passed a camera."),
    Message(name="case_reviewed", type=CaseReviewed, subject="traffic.case.reviewed.v1.{camera_id}.{decision}",
            stream="CASES", summary="A police officer confirmed or rejected a case."),
    Message(name="case_resolved", type=CaseResolved, subject="traffic.case.resolved.v1.{camera_id}", stream="CASES",
            summary="A case was closed (fine paid, cancelled...)."),
    Message(name="notice_sent", type=NoticeSent, subject="traffic.notice.sent.v1.{camera_id}.{channel}",
            stream="NOTICES", summary="A notice was delivered on one channel."),
    Message(name="notice_failed", type=NoticeFailed, subject="traffic.notice.failed.v1.{camera_id}.{channel}",
            stream="NOTICES", summary="A notice could not be delivered on one channel."),
    Message(name="notice_held", type=NoticeHeld, subject="traffic.notice.held.v1.{camera_id}",
            stream="NOTICES", summary="notify holds a confirmed case's notices until a person acts "
                                      "(no legal basis for its vehicle class, or a possible duplicate)."),
    Message(name="vehicles_counted", type=VehiclesCounted, subject="traffic.vehicles.counted.v1.{camera_id}",
            stream="TELEMETRY", summary="Vehicles counted per class and lane over a window."),
    Message(name="camera_status", type=CameraStatus, subject="traffic.camera.status.v1.{camera_id}",
            stream="TELEMETRY", summary="A camera's state change or heartbeat."),
    Message(name="signal_phase", type=SignalPhase, subject="traffic.signal.phase.v1.{intersection_id}",
            stream="TELEMETRY", summary="A traffic-signal head changed phase."),
    Message(name="incident_detected", type=IncidentDetected,
            subject="traffic.incident.detected.v1.{camera_id}.{incident_type}", stream="INCIDENTS",
            summary="An incident on the road began (stopped vehicle, pedestrian on the carriageway, wrong-way "
                    "driving, congestion): once per incident, with evidence frames."),
    Message(name="incident_updated", type=IncidentUpdated,
            subject="traffic.incident.updated.v1.{camera_id}.{incident_type}", stream="INCIDENTS",
            summary="An open incident changed materially (congestion level, duration)."),
    Message(name="incident_cleared", type=IncidentCleared,
            subject="traffic.incident.cleared.v1.{camera_id}.{incident_type}", stream="INCIDENTS",
            summary="An incident ended on the road, or can no longer be followed (track lost, stream break)."),
    Message(name="dead_letter", type=DeadLetter, subject="traffic.dlq.{service}", stream="DEAD_LETTERS",
            summary="A message a service could not use, with the reason and the original payload."),
    Message(name="audit_anchored", type=AuditAnchored, subject="traffic.audit.anchored.v1.{chain}",
            stream="AUDIT_ANCHORS", summary="The signed head of an audit chain (seq and hash of its last row), "
                                            "published at intervals and with each report; kept undeletable."),
)

BY_NAME: dict[str, Message] = {message.name: message for message in MESSAGES}


class Endpoint(msgspec.Struct, frozen=True, kw_only=True):
    """A request/reply endpoint (nats.micro): not kept in a stream; request and reply are JSON."""

    name: str  # schemas and golden samples: <name>_request, <name>_reply
    subject: str
    request: type
    reply: type
    summary: str
    service: str  # the nats.micro service that answers
    personal_data: bool = False  # in the reply


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(name="lookup_owner", subject="traffic.registry.v1.lookup-owner", request=OwnerLookupRequest,
             reply=OwnerLookupReply, service="registry",
             summary="A vehicle's registration and owner by plate. Police account only; every request is "
                     "audited (who, which plate, which case).",
             personal_data=True),
)

# Every JSON document of the contract by file name: events, and each endpoint's request and reply.
CONTRACT: dict[str, type] = {
    **{message.name: message.type for message in MESSAGES},
    **{f"{e.name}_{part}": getattr(e, part) for e in ENDPOINTS for part in ("request", "reply")},
}

__all__ = [
    "AuditAnchored",
    "MESSAGES", "BY_NAME", "Message", "ENDPOINTS", "Endpoint", "CONTRACT", "OwnerLookupRequest", "OwnerLookupReply",
    "Box", "Point", "Location", "PlateAlternative", "PlateText", "EvidenceRef",
    "FrameMeta", "FrameRef", "DetectedObject", "DetectedPlate", "DetectionMade",
    "Measurement", "ViolationDetected", "Vehicle", "Owner", "ViolationIdentified", "ViolationUnidentified",
    "HotlistHit", "CaseReviewed", "CaseResolved", "NoticeSent", "NoticeFailed", "NoticeHeld",
    "VehicleCount", "VehiclesCounted", "CameraStatus", "SignalPhase", "DeadLetter",
    "IncidentDetected", "IncidentUpdated", "IncidentCleared", "LaneTraffic",
]
