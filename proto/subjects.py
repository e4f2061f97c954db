"""Every NATS subject roadwatch uses, declared once.

Events: `traffic.<noun>.<past-verb>.v1.<camera_id>[.<kind>]`. Request/reply:
`traffic.<service>.v1.<endpoint>`. Tokens are lowercase with `-` inside; a camera id never
contains a dot, so that wildcards (`traffic.violation.detected.v1.cam-07.*`) mean what they say.
"""

from __future__ import annotations

import re

TOKEN = re.compile(r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$")

VERSION = "v1"


def check_token(value: str, what: str = "token") -> str:
    """Raise ValueError unless `value` is one lowercase subject token (no dots, no wildcards)."""
    if not isinstance(value, str) or not TOKEN.match(value):
        raise ValueError(f"{what} {value!r} is not a valid subject token (lowercase letters, digits, '-' or '_' inside)")
    return value


def _event(noun: str, verb: str, about: str, kind: str | None = None, *, what: str = "camera id") -> str:
    """`traffic.<noun>.<verb>.v1.<about>[.<kind>]`: `about` is mostly a camera id; `what` names it in the error."""
    subject = f"traffic.{noun}.{verb}.{VERSION}.{check_token(about, what)}"
    return subject if kind is None else f"{subject}.{check_token(kind, 'kind')}"


# --- frames and detections -------------------------------------------------------------------
def frame_captured(camera_id: str) -> str:
    return _event("frame", "captured", camera_id)


def detection_made(camera_id: str) -> str:
    return _event("detection", "made", camera_id)


# --- violations --------------------------------------------------------------------------------
def violation_detected(camera_id: str, violation_type: str) -> str:
    return _event("violation", "detected", camera_id, violation_type)


def violation_identified(camera_id: str, violation_type: str) -> str:
    return _event("violation", "identified", camera_id, violation_type)


def violation_unidentified(camera_id: str, violation_type: str) -> str:
    return _event("violation", "unidentified", camera_id, violation_type)


def hotlist_hit(camera_id: str) -> str:
    return _event("hotlist", "hit", camera_id)


# --- incidents ------------------------------------------------------------------------------------
def incident_detected(camera_id: str, incident_type: str) -> str:
    return _event("incident", "detected", camera_id, incident_type)


def incident_updated(camera_id: str, incident_type: str) -> str:
    return _event("incident", "updated", camera_id, incident_type)


def incident_cleared(camera_id: str, incident_type: str) -> str:
    return _event("incident", "cleared", camera_id, incident_type)


# --- cases and notices ---------------------------------------------------------------------------
def case_reviewed(camera_id: str, decision: str) -> str:
    return _event("case", "reviewed", camera_id, decision)


def case_resolved(camera_id: str) -> str:
    return _event("case", "resolved", camera_id)


def notice_sent(camera_id: str, channel: str) -> str:
    return _event("notice", "sent", camera_id, channel)


def notice_failed(camera_id: str, channel: str) -> str:
    return _event("notice", "failed", camera_id, channel)


def notice_held(camera_id: str) -> str:
    return _event("notice", "held", camera_id)


# --- telemetry -----------------------------------------------------------------------------------
def vehicles_counted(camera_id: str) -> str:
    return _event("vehicles", "counted", camera_id)


def camera_status(camera_id: str) -> str:
    return _event("camera", "status", camera_id)


def signal_phase(intersection_id: str) -> str:
    return _event("signal", "phase", intersection_id, what="intersection id")


def model_promoted(model: str) -> str:
    return _event("model", "promoted", model, what="model name")


def audit_anchored(chain: str) -> str:
    return _event("audit", "anchored", chain, what="chain")


# --- dead letters and request/reply ---------------------------------------------------------------
def dlq(service: str) -> str:
    return f"traffic.dlq.{check_token(service, 'service')}"


def request(service: str, endpoint: str) -> str:
    return f"traffic.{check_token(service, 'service')}.{VERSION}.{check_token(endpoint, 'endpoint')}"


# Wildcards, for stream subjects and consumer filters.
ALL_FRAMES = f"traffic.frame.captured.{VERSION}.>"
ALL_DETECTIONS = f"traffic.detection.made.{VERSION}.>"
ALL_VIOLATIONS_DETECTED = f"traffic.violation.detected.{VERSION}.>"
ALL_VIOLATIONS_IDENTIFIED = f"traffic.violation.identified.{VERSION}.>"
ALL_VIOLATIONS_UNIDENTIFIED = f"traffic.violation.unidentified.{VERSION}.>"
ALL_HOTLIST_HITS = f"traffic.hotlist.hit.{VERSION}.>"
ALL_INCIDENTS_DETECTED = f"traffic.incident.detected.{VERSION}.>"
ALL_INCIDENTS_UPDATED = f"traffic.incident.updated.{VERSION}.>"
ALL_INCIDENTS_CLEARED = f"traffic.incident.cleared.{VERSION}.>"
ALL_CASES_REVIEWED = f"traffic.case.reviewed.{VERSION}.>"
ALL_CASES_RESOLVED = f"traffic.case.resolved.{VERSION}.>"
ALL_NOTICES_SENT = f"traffic.notice.sent.{VERSION}.>"
ALL_NOTICES_FAILED = f"traffic.notice.failed.{VERSION}.>"
ALL_NOTICES_HELD = f"traffic.notice.held.{VERSION}.>"
ALL_VEHICLES_COUNTED = f"traffic.vehicles.counted.{VERSION}.>"
ALL_CAMERA_STATUS = f"traffic.camera.status.{VERSION}.>"
ALL_SIGNAL_PHASES = f"traffic.signal.phase.{VERSION}.>"
ALL_DEAD_LETTERS = "traffic.dlq.>"
ALL_AUDIT_ANCHORS = f"traffic.audit.anchored.{VERSION}.>"
ALL_MODELS_PROMOTED = f"traffic.model.promoted.{VERSION}.>"
