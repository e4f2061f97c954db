"""Incident alerts: who gets one, and what it says. Pure functions, no I/O, so that the wording
of every incident type is testable on its own and every replica decides the same way.

An alert is a notice (notify.notices) of kind `incident_alert` or `incident_cleared`, for one
incident, recipient and channel; its id is derived from those, so a redelivered or republished
event plans the same ids and the store's keys drop them.
"""

from __future__ import annotations

import string
from datetime import datetime

import msgspec

from proto import ids
from proto.v1.incident import IncidentCleared, IncidentDetected
from services.notify import decisions
from services.notify.config import AlertRecipient, Config, IncidentAlerts
from services.notify.decisions import Planned

ALERT = "incident_alert"
CLEARED = "incident_cleared"
KINDS = (ALERT, CLEARED)
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


def alert_id(incident_id: str, kind: str, recipient: str, channel: str) -> str:
    return ids.event_id("alert", incident_id, kind, recipient, channel)


def wants(recipient: AlertRecipient, incident: IncidentDetected) -> bool:
    """The recipient asked for this type (or for every type) at this severity or below it."""
    if recipient.types and incident.type not in recipient.types:
        return False
    return SEVERITY_RANK[incident.severity] >= SEVERITY_RANK[recipient.min_severity]


def plan(alerts: IncidentAlerts | None, incident: IncidentDetected, kind: str) -> list[Planned]:
    """The alerts (kind ALERT) or end messages (kind CLEARED) this incident owes: per recipient
    that wants it, one e-mail to all its addresses and one webhook POST."""
    if alerts is None:
        return []
    planned: list[Planned] = []
    for recipient in alerts.recipients:
        if not wants(recipient, incident) or (kind == CLEARED and not recipient.cleared):
            continue
        if recipient.email:
            planned.append(Planned(
                notice_id=alert_id(incident.incident_id, kind, recipient.name, "email"), case_id="",
                incident_id=incident.incident_id, kind=kind, channel="email", recipient=recipient.name,  # type: ignore[arg-type]
                transport="smtp", address=", ".join(recipient.email)))
        if recipient.webhook is not None:
            planned.append(Planned(
                notice_id=alert_id(incident.incident_id, kind, recipient.name, "webhook"), case_id="",
                incident_id=incident.incident_id, kind=kind, channel="webhook", recipient=recipient.name,  # type: ignore[arg-type]
                transport="webhook", address=recipient.webhook.url, secret_env=recipient.webhook.secret_env))
    return planned


# --- wording --------------------------------------------------------------------------------------
def duration(seconds: float, alerts: IncidentAlerts) -> str:
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return alerts.durations.long.format(hours=hours, minutes=f"{minutes:02d}", seconds=f"{secs:02d}")
    return alerts.durations.short.format(hours=0, minutes=minutes, seconds=f"{secs:02d}")


def _number(value: float) -> str:
    """Vietnamese decimal comma: 12,5."""
    return f"{value:.1f}".rstrip("0").rstrip(".").replace(".", ",")


def fields(config: Config, incident: IncidentDetected, *, recipient: str = "",
           cleared: IncidentCleared | None = None) -> dict[str, str]:
    """The values alert templates may use (config.INCIDENT_FIELDS); empty where the incident has
    no such thing (a pedestrian has no vehicle class, only congestion has a level)."""
    alerts = config.incident_alerts
    assert alerts is not None
    traffic = incident.traffic
    speed = ""
    if traffic is not None and traffic.mean_speed is not None and traffic.speed_unit == "km/h":
        # px/s means nothing to a reader: only a calibrated scene's speed is printed.
        speed = f"{_number(traffic.mean_speed)} km/h"
    return {
        "incident_id": incident.incident_id,
        "type": alerts.types.get(incident.type, incident.type),
        "type_code": incident.type,
        "severity": alerts.severities.get(incident.severity, incident.severity),
        "severity_code": incident.severity,
        "camera_id": incident.camera_id,
        "device": config.device(incident.camera_id),
        "place": incident.location.address or f"{incident.location.latitude:.5f}, {incident.location.longitude:.5f}",
        "lane": alerts.lanes.get(incident.lane, incident.lane) if incident.lane else "",
        "zone": incident.zone or "",
        "vehicle_class": (config.vehicle_types.get(incident.vehicle_class, incident.vehicle_class)
                          if incident.vehicle_class else ""),
        "began_at": decisions.format_time(incident.occurred_at, config),
        "detected_at": decisions.format_time(incident.detected_at, config),
        "cleared_at": decisions.format_time(cleared.occurred_at, config) if cleared else "",
        "duration": duration(cleared.duration_s if cleared else incident.duration_s, alerts),
        "level": alerts.levels.get(traffic.level, traffic.level) if traffic else "",
        "occupancy": f"{round(traffic.occupancy * 100)} %" if traffic else "",
        "queue_vehicles": str(traffic.queue_vehicles) if traffic else "",
        "vehicles": str(traffic.vehicles) if traffic else "",
        "mean_speed": speed,
        "board_url": alerts.board_url.format(incident_id=incident.incident_id, camera_id=incident.camera_id),
        "clear_reason": alerts.clear_reasons.get(cleared.reason, cleared.reason) if cleared else "",
        "recipient": recipient,
    }


def render_lines(template: str, values: dict[str, str]) -> str:
    """Render, leaving out each line whose placeholders are all empty (no lane, no level...):
    one body serves every incident type. A line without placeholders is kept."""
    out: list[str] = []
    for line in template.splitlines():
        names = [name for _, name, _, _ in string.Formatter().parse(line) if name is not None]
        if names and not any(values.get(name, "") for name in names):
            continue
        out.append(line.format_map(values))
    return "\n".join(out).strip("\n") + "\n"


def wording(config: Config, incident: IncidentDetected, kind: str, *, recipient: str = "",
            cleared: IncidentCleared | None = None) -> tuple[str, str]:
    """(subject, body) of an alert or of its end message."""
    alerts = config.incident_alerts
    assert alerts is not None
    values = fields(config, incident, recipient=recipient, cleared=cleared if kind == CLEARED else None)
    if kind == CLEARED:
        subject, body = alerts.cleared_subject, alerts.cleared_body
    else:
        subject, body = alerts.subject, alerts.body
    return " ".join(subject.format_map(values).split()), render_lines(body, values)


class WebhookAlert(msgspec.Struct, frozen=True, kw_only=True):
    """What a recipient's system receives by webhook: the incident's facts and the configured
    wording (no personal data: incidents carry none)."""

    alert_id: str
    kind: str
    incident_id: str
    type: str
    severity: str
    camera_id: str
    place: str
    latitude: float
    longitude: float
    lane: str | None = None
    occurred_at: datetime
    detected_at: datetime
    cleared_at: datetime | None = None
    duration_s: float
    congestion_level: str | None = None
    board_url: str = ""
    recipient: str
    title: str
    text: str


def webhook_body(config: Config, incident: IncidentDetected, kind: str, *, alert: str, recipient: str,
                 cleared: IncidentCleared | None = None) -> bytes:
    title, text = wording(config, incident, kind, recipient=recipient, cleared=cleared)
    alerts = config.incident_alerts
    assert alerts is not None
    ended = cleared if kind == CLEARED else None
    return msgspec.json.encode(WebhookAlert(
        alert_id=alert, kind=kind, incident_id=incident.incident_id, type=incident.type, severity=incident.severity,
        camera_id=incident.camera_id, place=incident.location.address, latitude=incident.location.latitude,
        longitude=incident.location.longitude, lane=incident.lane, occurred_at=incident.occurred_at,
        detected_at=incident.detected_at, cleared_at=ended.occurred_at if ended else None,
        duration_s=ended.duration_s if ended else incident.duration_s,
        congestion_level=incident.traffic.level if incident.traffic else None,
        board_url=alerts.board_url.format(incident_id=incident.incident_id, camera_id=incident.camera_id),
        recipient=recipient, title=title, text=text))
