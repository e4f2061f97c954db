"""Prometheus metrics of the notify service (prefix roadwatch_notify_)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CASES = Counter("roadwatch_notify_cases_total", "Case events handled, by outcome.", ["event", "outcome"])
NOTICES = Counter("roadwatch_notify_notices_total", "Delivery attempts of notices, by kind, channel and result "
                  "(sent, retry, failed).", ["kind", "channel", "result"])
SEND_SECONDS = Histogram("roadwatch_notify_send_seconds", "Time of one delivery attempt, by transport.",
                         ["transport"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
RENDER_SECONDS = Histogram("roadwatch_notify_render_seconds", "Time to render one PDF letter.",
                           buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
OWNER_LOOKUPS = Counter("roadwatch_notify_owner_lookups_total", "Owner lookups at the registry, by result.",
                        ["result"])
DEADLINES = Counter("roadwatch_notify_deadlines_total", "Deadlines that came due, by outcome (warned, closed).",
                    ["outcome"])
EVENTS_PUBLISHED = Counter("roadwatch_notify_events_published_total", "Outbox events published, by result.",
                           ["result"])
WEBHOOKS = Counter("roadwatch_notify_webhook_attempts_total", "Webhook delivery attempts to subscribers, by result "
                   "(delivered, retry, dead).", ["subscriber", "result"])
PENDING = Gauge("roadwatch_notify_notices_pending", "Notices waiting to be sent (pending or being sent).")
DAY_S = 86_400
# Seconds (Prometheus base units), bucketed by whole days: the legal limit is counted in days.
NOTICE_DELAY_SECONDS = Histogram(
    "roadwatch_notify_notice_delay_seconds", "Seconds from the violation to the case being recorded for notice; "
    "the legal limit is deadlines.notice_within_days.",
    buckets=tuple(days * DAY_S for days in (1, 2, 3, 5, 7, 8, 9, 10, 12, 15, 20, 30)))
LATE_NOTICES = Counter("roadwatch_notify_late_notices_total",
                       "Cases recorded for notice after deadlines.notice_within_days had passed.")
INCIDENTS = Counter("roadwatch_notify_incidents_total", "Incident events handled, by event (detected, cleared) and "
                    "outcome (alerts: new alerts recorded; none: nobody wants it or all were recorded before).",
                    ["event", "outcome"])
INCIDENT_ALERTS = Counter("roadwatch_notify_incident_alerts_total", "Delivery attempts of incident alerts, by kind "
                          "(incident_alert, incident_cleared), channel (email, webhook) and result (sent, retry, "
                          "failed).", ["kind", "channel", "result"])
