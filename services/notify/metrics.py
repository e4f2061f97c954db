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
