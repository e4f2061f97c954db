-- Camera uptime (issue 19): the history of each camera's changes of state, from camera.status.
-- camera_health keeps only the latest report; availability per day and outages (start, end,
-- cause) need every change. One row per change as reported by ingest (heartbeats that repeat
-- the state add nothing); an event that arrives late is inserted at its own time, so a history
-- read in time order is right whatever order the events came in.
CREATE TABLE portal.camera_state_changes (
    camera_id   text NOT NULL,
    occurred_at timestamptz NOT NULL,
    state       text NOT NULL CHECK (state IN ('online', 'degraded', 'offline')),
    reason      text NOT NULL DEFAULT '',
    event_id    text NOT NULL UNIQUE,
    PRIMARY KEY (camera_id, occurred_at)
);

-- Seed from the latest state already known, so that uptime is not blank until the next change.
INSERT INTO portal.camera_state_changes (camera_id, occurred_at, state, reason, event_id)
SELECT camera_id, state_since, state, reason, 'seed-' || camera_id FROM portal.camera_health
ON CONFLICT DO NOTHING;
