"""What notify does with an incident event: record the incident and the alerts it owes in one
transaction. Sending happens later (sender.py, with the notices' lease and retries), so the ack
means "recorded", and a slow mail server never holds a message of the INCIDENTS stream."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

import asyncpg
from nats.aio.msg import Msg

from proto import codec
from proto.v1.incident import IncidentCleared, IncidentDetected
from services.notify import alerts, metrics, store
from services.notify.config import Config

log = logging.getLogger("notify.incidents")

DETECTED_PREFIX = "traffic.incident.detected."
CLEARED_PREFIX = "traffic.incident.cleared."


OTHER = "other"  # another event of the stream (incident.updated under a wider filter): acked, left alone


def decode(msg: Msg) -> IncidentDetected | IncidentCleared | str:
    """One consumer reads detections and ends; the subject says which."""
    if msg.subject.startswith(DETECTED_PREFIX):
        return codec.decode(msg.data, IncidentDetected)
    if msg.subject.startswith(CLEARED_PREFIX):
        return codec.decode(msg.data, IncidentCleared)
    return OTHER


class Incidents:
    def __init__(self, pool: asyncpg.Pool, config: Config, *, clock: Callable[[], datetime],
                 on_notices: Callable[[], None]) -> None:
        self.pool = pool
        self.config = config
        self.clock = clock
        self.on_notices = on_notices

    def plan_cleared(self, incident: IncidentDetected) -> list:
        return alerts.plan(self.config.incident_alerts, incident, alerts.CLEARED)

    async def handle(self, event: IncidentDetected | IncidentCleared | str, msg: Msg) -> None:
        if isinstance(event, str):
            metrics.INCIDENTS.labels("other", "ignored").inc()
            return
        now = self.clock()
        if isinstance(event, IncidentDetected):
            planned = alerts.plan(self.config.incident_alerts, event, alerts.ALERT)
            created = await store.record_incident(self.pool, event, now, planned, self.plan_cleared)
            name = "detected"
        else:
            created = await store.record_incident_cleared(self.pool, event, now, self.plan_cleared)
            name = "cleared"
        metrics.INCIDENTS.labels(name, "alerts" if created else "none").inc()
        log.info("incident recorded", extra={"fields": {"incident": event.incident_id, "event": name,
                                                        "type": event.type, "alerts": created}})
        if created:
            self.on_notices()
