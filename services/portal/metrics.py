"""Prometheus metrics of the portal (prefix roadwatch_portal_)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter("roadwatch_portal_http_requests_total", "HTTP requests by route and status.", ["route", "status"])
REQUEST_SECONDS = Histogram("roadwatch_portal_http_request_duration_seconds", "HTTP request time by route.", ["route"],
                            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
CASES = Counter("roadwatch_portal_cases_total", "Cases created from violations, by initial state.", ["state"])
DUPLICATES = Counter("roadwatch_portal_duplicate_events_total", "Events already applied (redelivery, replay).", ["kind"])
DECISIONS = Counter("roadwatch_portal_decisions_total", "Police decisions (confirmed, rejected, resolved).", ["decision"])
REFUSED = Counter("roadwatch_portal_transitions_refused_total", "State changes refused by the state machine.", ["source"])
AUDIT_ROWS = Counter("roadwatch_portal_audit_rows_total", "Rows appended to the audit log, by action.", ["action"])
EVIDENCE_BYTES = Counter("roadwatch_portal_evidence_bytes_total", "Evidence bytes served after their SHA-256 was checked.")
EVIDENCE_MISMATCH = Counter("roadwatch_portal_evidence_mismatch_total", "Evidence objects whose SHA-256 did not match.")
RATE_LIMITED = Counter("roadwatch_portal_rate_limited_total", "Public lookups refused by the per-client limit.")
OUTBOX_PENDING = Gauge("roadwatch_portal_outbox_pending", "Decided events not yet acknowledged by NATS.")
POSSIBLE_DUPLICATES = Counter("roadwatch_portal_possible_duplicates_total",
                              "Cases opened that repeat an open case (same plate, violation, place, window).")
MERGED = Counter("roadwatch_portal_cases_merged_total", "Cases merged into the case of the same event.")
HELD = Counter("roadwatch_portal_cases_held_total", "Confirmed cases whose notices notify holds, by reason "
               "(no_legal_basis: cần căn cứ pháp lý; possible_duplicate).", ["reason"])
PLATE_OVERRIDES = Counter("roadwatch_portal_plate_class_overrides_total",
                          "Plates confirmed against the vehicle class's plate format, with a reason.")
CSRF_REFUSED = Counter("roadwatch_portal_csrf_refused_total", "State-changing requests refused as possibly forged, by "
                       "reason (foreign_origin, no_origin, bad_token).", ["reason"])
AUDIT_ANCHORS = Counter("roadwatch_portal_audit_anchors_total", "Audit chain heads anchored in AUDIT_ANCHORS, by "
                        "reason (start, interval, report).", ["reason"])
AUDIT_ANCHOR_FAILURES = Counter("roadwatch_portal_audit_anchor_failures_total",
                                "Audit anchors that could not be published (retried at the next interval).")
PURGED = Counter("roadwatch_portal_purged_total", "Objects removed by the retention purge, by data class.",
                 ["data_class"])
INCIDENT_EVENTS = Counter("roadwatch_portal_incident_events_total", "Incident events applied to the board, by kind "
                          "(detected, updated, cleared) and incident type.", ["kind", "type"])
FRAME_GETS = Counter("roadwatch_portal_frame_gets_total", "Latest-frame reads for the camera wall, by how they were "
                     "answered (cached, shared with a read in flight, fetched from FRAMES, missing).", ["result"])
FRAME_GET_SECONDS = Histogram("roadwatch_portal_frame_get_seconds", "Time to read a camera's newest frame from FRAMES.",
                              buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0))
BOARD_STREAMS = Gauge("roadwatch_portal_board_streams", "Live board connections (server-sent events) open.")
BOARD_NOTIFICATIONS = Counter("roadwatch_portal_board_notifications_total", "Board changes heard from PostgreSQL "
                              "(NOTIFY portal_board), by kind.", ["kind"])
