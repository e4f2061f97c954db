-- Incident alerts (incident.detected, and incident.cleared where a recipient wants it) are
-- notices like any other: the same sender, lease, retries and idempotency keys. A notice is now
-- about a case or about an incident, never both; an alert is unique per (incident, kind,
-- recipient, channel), so a redelivered or republished event inserts nothing.

CREATE TABLE notify.incidents (
    incident_id  text PRIMARY KEY,
    camera_id    text NOT NULL,
    type         text NOT NULL,
    detected     jsonb,                 -- the incident.detected event (no personal data)
    cleared      jsonb,                 -- the incident.cleared event, when it came
    received_at  timestamptz NOT NULL,
    CHECK (detected IS NOT NULL OR cleared IS NOT NULL)
);

ALTER TABLE notify.notices ALTER COLUMN case_id DROP NOT NULL;
ALTER TABLE notify.notices ADD COLUMN incident_id text REFERENCES notify.incidents (incident_id);
ALTER TABLE notify.notices ADD CONSTRAINT notices_case_or_incident CHECK (num_nonnulls(case_id, incident_id) = 1);
ALTER TABLE notify.notices DROP CONSTRAINT notices_kind_check;
ALTER TABLE notify.notices ADD CONSTRAINT notices_kind_check CHECK (
    (case_id IS NOT NULL AND kind IN ('owner_notice', 'commune_transfer', 'inspection_warning', 'inspection_lifted'))
    OR (incident_id IS NOT NULL AND kind IN ('incident_alert', 'incident_cleared') AND channel IN ('email', 'webhook')));

CREATE UNIQUE INDEX notices_alert_once ON notify.notices (incident_id, kind, recipient, channel)
    WHERE incident_id IS NOT NULL;
