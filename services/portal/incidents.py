"""Incidents on the board: how incident.detected / updated / cleared fold into one row, in any order.

A durable consumer delivers in stream order, but a nak'ed `detected` (PostgreSQL away for a
moment) comes back after the `updated` or `cleared` behind it was already applied. So each event
changes only what it is the newest source of:

- `detected` fills what only it carries (place, lane, zone, evidence, when it began); its
  severity, traffic and tracks only if no newer `updated` was applied;
- `updated` sets severity, traffic, tracks and the change when it is newer than what is there;
- `cleared` is final: it ends the incident (time, reason, final duration) whenever it arrives,
  and an older `updated` arriving after it no longer changes the duration.

The functions here are pure (row and event in, changed columns out); store.py holds the SQL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from proto.v1 import IncidentCleared, IncidentDetected, IncidentUpdated

Event = IncidentDetected | IncidentUpdated | IncidentCleared

KINDS: dict[type, str] = {IncidentDetected: "detected", IncidentUpdated: "updated", IncidentCleared: "cleared"}

TYPE_LABELS = {
    "stopped_vehicle": "Xe dừng đỗ bất thường",
    "pedestrian_on_carriageway": "Người đi bộ trên phần đường xe chạy",
    "wrong_way_driving": "Xe đi ngược chiều",
    "congestion": "Ùn tắc giao thông",
}
SEVERITY_LABELS = {"info": "Thông tin", "warning": "Cảnh báo", "critical": "Khẩn cấp"}
LEVEL_LABELS = {"free": "Thông thoáng", "moderate": "Đông xe", "heavy": "Ùn ứ", "jammed": "Ùn tắc"}
CLEAR_LABELS = {"resolved": "Đã hết trên đường", "track_lost": "Mất dấu phương tiện",
                "stream_break": "Mất tín hiệu camera"}


def kind_of(event: Event) -> str:
    return KINDS[type(event)]


def opening_row(event: Event) -> dict[str, Any]:
    """The columns an incident's first row gets from whichever of its events arrives first."""
    return {"incident_id": event.incident_id, "camera_id": event.camera_id, "type": event.type,
            "last_event_id": event.id}


def _traffic(event: IncidentDetected | IncidentUpdated) -> str | None:
    return msgspec.json.encode(event.traffic).decode() if event.traffic is not None else None


def _older(at: datetime, than: datetime | None) -> bool:
    return than is not None and at < than


def changes(row: dict[str, Any], event: Event) -> dict[str, Any]:
    """The columns `event` changes in the incident's current `row` (locked by the caller)."""
    out: dict[str, Any] = {"last_event_id": event.id}
    cleared = row["cleared_at"] is not None
    if isinstance(event, IncidentDetected):
        out.update(detected=True, occurred_at=event.occurred_at, detected_at=event.detected_at,
                   latitude=event.location.latitude, longitude=event.location.longitude,
                   address=event.location.address, lane=event.lane, zone=event.zone,
                   vehicle_class=event.vehicle_class,
                   parameters=msgspec.json.encode(event.parameters).decode(),
                   evidence=msgspec.json.encode(list(event.evidence)).decode(), evidence_status=event.evidence_status)
        if not _older(event.detected_at, row["updated_at"]):  # nothing newer has been applied
            out.update(severity=event.severity, traffic=_traffic(event), track_ids=list(event.track_ids))
        if not cleared:
            out["duration_s"] = max(row["duration_s"], event.duration_s)
    elif isinstance(event, IncidentUpdated):
        if not _older(event.occurred_at, row["updated_at"]) and not _older(event.occurred_at, row["detected_at"]):
            out.update(severity=event.severity, updated_at=event.occurred_at, last_change=event.change)
            if event.traffic is not None:
                out["traffic"] = _traffic(event)
            if event.track_ids:
                out["track_ids"] = list(event.track_ids)
        if not cleared:
            out["duration_s"] = max(row["duration_s"], event.duration_s)
    else:
        out.update(cleared_at=event.occurred_at, clear_reason=event.reason, duration_s=event.duration_s)
        if row["occurred_at"] is None:
            out["occurred_at"] = event.started_at
    return out
