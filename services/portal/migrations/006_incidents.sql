-- Incidents for the operations board (issue 19): one row per incident_id, built from
-- incident.detected / updated / cleared in whatever order they arrive (a redelivery may bring an
-- `updated` or a `cleared` before its `detected`: the row is opened by whichever comes first and
-- completed by the others), then acknowledged and closed by an operator (audited).
-- Also the latest signal phase per head, for the camera wall.

CREATE TABLE portal.incidents (
    incident_id      text PRIMARY KEY,
    camera_id        text NOT NULL,
    type             text NOT NULL,
    severity         text NOT NULL DEFAULT 'warning',
    detected         boolean NOT NULL DEFAULT false,  -- the `detected` event has been applied
    latitude         double precision,                -- from `detected` (NULL until it arrives)
    longitude        double precision,
    address          text NOT NULL DEFAULT '',
    lane             text,
    zone             text,
    occurred_at      timestamptz,  -- when the condition began (detected, or the cleared's started_at)
    detected_at      timestamptz,  -- when it had held long enough to be reported
    updated_at       timestamptz,  -- the newest `updated` applied (its occurred_at)
    cleared_at       timestamptz,  -- when the condition ended on the road
    clear_reason     text,         -- resolved, track_lost, stream_break
    duration_s       double precision NOT NULL DEFAULT 0,
    track_ids        integer[] NOT NULL DEFAULT '{}',
    vehicle_class    text,
    traffic          jsonb,        -- congestion: LaneTraffic of the newest state
    parameters       jsonb NOT NULL DEFAULT '{}',
    evidence         jsonb NOT NULL DEFAULT '[]',
    evidence_status  text NOT NULL DEFAULT 'not_collected',
    last_change      text NOT NULL DEFAULT '',  -- the newest `updated`'s change, e.g. "level heavy -> jammed"
    acknowledged_at  timestamptz,
    acknowledged_by  text,
    acknowledge_note text,
    closed_at        timestamptz,
    closed_by        text,
    close_note       text,
    last_event_id    text NOT NULL,  -- the event applied last (for tracing; idempotency is incident_events)
    created_at       timestamptz NOT NULL DEFAULT now(),
    changed_at       timestamptz NOT NULL DEFAULT now(),  -- the row's last change, for the board's order
    CHECK (closed_at IS NULL OR (closed_by IS NOT NULL AND close_note IS NOT NULL AND close_note <> '')),
    CHECK (acknowledged_at IS NULL OR acknowledged_by IS NOT NULL)
);
CREATE INDEX incidents_open ON portal.incidents (changed_at DESC) WHERE closed_at IS NULL;
CREATE INDEX incidents_camera ON portal.incidents (camera_id, occurred_at);

-- Every incident event applied, by its id: a redelivery or a replay finds its id here and
-- changes nothing.
CREATE TABLE portal.incident_events (
    event_id    text PRIMARY KEY,
    incident_id text NOT NULL REFERENCES portal.incidents (incident_id),
    kind        text NOT NULL CHECK (kind IN ('detected', 'updated', 'cleared')),
    occurred_at timestamptz NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX incident_events_incident ON portal.incident_events (incident_id, occurred_at);

-- The newest phase of each signal head (signal.phase events; an older one arriving late is ignored).
CREATE TABLE portal.signal_phases (
    intersection_id text NOT NULL,
    head            text NOT NULL,
    camera_id       text,           -- set when the phase was read from a camera's image
    phase           text NOT NULL,
    source          text NOT NULL,
    occurred_at     timestamptz NOT NULL,
    phase_since     timestamptz NOT NULL,
    PRIMARY KEY (intersection_id, head)
);
CREATE INDEX signal_phases_camera ON portal.signal_phases (camera_id);
