-- The portal schema as the three migrations below left it, written once (the case trigger was
-- written three times). A database that applied them keeps its history: `roadwatch migrate`
-- checks their recorded checksums against these lines and runs nothing here.
-- squashes: 001_portal 8a4b95b8e57eb88154bd183dba907eae9ea3f336b3f2e210961598e11a0a8308
-- squashes: 002_review_once 45102a0154a044b0abfc7e50f6d44fc076fb1b230dfe89fcd6f5037a9342041d
-- squashes: 003_duplicates_and_holds c4c67219afa3ab8e675f4a6d2cd3152c3a6d890dac5292fbd1f828c0f5664b0c
--
-- The portal: cases materialised from violations and the later events, the allowed state
-- transitions (enforced here, so that no code path, replica or manual UPDATE can skip the
-- legal workflow), notices as reported by notify, telemetry for the statistics, the outbox of
-- events to publish, and the hash-chained audit log of every read of evidence or owner data.

CREATE SCHEMA IF NOT EXISTS portal;

CREATE TABLE portal.case_states (
    state text PRIMARY KEY,
    open  boolean NOT NULL  -- shown in the public lookup (the owner still has something to do)
);
INSERT INTO portal.case_states (state, open) VALUES
    ('detected', false), ('identified', false), ('unidentified', false), ('confirmed', true),
    ('rejected', false), ('notified', true), ('warned', true), ('resolved', false), ('merged', false);

-- DESIGN.md §4. A row here is the only way a case may change state.
CREATE TABLE portal.case_transitions (
    from_state text NOT NULL REFERENCES portal.case_states (state),
    to_state   text NOT NULL REFERENCES portal.case_states (state),
    PRIMARY KEY (from_state, to_state)
);
INSERT INTO portal.case_transitions (from_state, to_state) VALUES
    ('detected', 'identified'), ('detected', 'unidentified'),
    ('identified', 'confirmed'), ('identified', 'rejected'),
    ('unidentified', 'confirmed'), ('unidentified', 'rejected'),
    ('confirmed', 'notified'), ('confirmed', 'resolved'),
    ('notified', 'warned'), ('notified', 'resolved'),
    ('warned', 'resolved'),
    ('identified', 'merged'), ('unidentified', 'merged'), ('confirmed', 'merged');

CREATE SEQUENCE portal.case_number;

CREATE TABLE portal.cases (
    case_id          text PRIMARY KEY,
    violation_id     text NOT NULL UNIQUE,
    source_event_id  text NOT NULL UNIQUE,
    camera_id        text NOT NULL,
    violation_type   text NOT NULL,
    violation_at     timestamptz NOT NULL,
    detected_at      timestamptz,
    latitude         double precision NOT NULL,
    longitude        double precision NOT NULL,
    address          text NOT NULL DEFAULT '',
    place_commune    text NOT NULL DEFAULT '',
    vehicle_class    text NOT NULL,
    vehicle_colour   text,
    measurement      jsonb,
    rule             text NOT NULL DEFAULT '',
    plate_read       text,            -- as the camera read it (None: nothing readable)
    plate_confidence double precision,
    plate_alternatives jsonb NOT NULL DEFAULT '[]',
    plate            text NOT NULL DEFAULT '',   -- printed form, after any correction
    plate_key        text NOT NULL DEFAULT '',   -- [0-9A-Z] only, for the public lookup
    plate_corrected  boolean NOT NULL DEFAULT false,
    plate_colour     text NOT NULL DEFAULT '',
    vehicle_type     text NOT NULL DEFAULT '',
    brand            text NOT NULL DEFAULT '',
    colour           text NOT NULL DEFAULT '',
    inspection_status text NOT NULL DEFAULT '',
    match            text,
    mismatches       text[] NOT NULL DEFAULT '{}',
    unidentified_reason text,
    owner_commune    text NOT NULL DEFAULT '',   -- who may see it among the commune police
    evidence         jsonb NOT NULL DEFAULT '[]',
    state            text NOT NULL REFERENCES portal.case_states (state),
    reviewer         text,
    reviewer_agency  text,
    reviewed_at      timestamptz,
    reject_reason    text,
    notified_at      timestamptz,
    respond_by       timestamptz,
    warned_at        timestamptz,
    resolved_at      timestamptz,
    resolution       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    -- One event, one case: a case opened for the same plate, violation and place as an open
    -- case within the duplicate window is flagged (duplicate_of: "có thể trùng với CASE-…"), and
    -- the reviewer may merge it into that case. `merged` is a final state, reached only with the
    -- case it was merged into, which must be another case still in the workflow.
    duplicate_of         text REFERENCES portal.cases (case_id),
    merged_into          text REFERENCES portal.cases (case_id),
    merged_by            text,
    merged_at            timestamptz,
    distinct_from        text[] NOT NULL DEFAULT '{}',
    -- Cases notify holds (notice.held: no legal basis for the vehicle class, possible duplicate)
    -- carry the reason; a plate confirmed against the vehicle class's plate format carries the
    -- reviewer's override reason (the override is also in the audit log).
    notice_hold          text CHECK (notice_hold IN ('no_legal_basis', 'possible_duplicate')),
    notice_hold_detail   text NOT NULL DEFAULT '',
    plate_class_override text,
    CHECK (state <> 'rejected' OR reject_reason IS NOT NULL),
    CONSTRAINT merged_has_target CHECK ((state = 'merged') = (merged_into IS NOT NULL)),
    CONSTRAINT not_merged_into_itself CHECK (merged_into IS DISTINCT FROM case_id)
);
CREATE INDEX cases_state ON portal.cases (state, violation_at);
CREATE INDEX cases_plate_key ON portal.cases (plate_key);
CREATE INDEX cases_owner_commune ON portal.cases (owner_commune);
CREATE INDEX cases_camera_day ON portal.cases (camera_id, violation_at);
CREATE INDEX cases_same_event ON portal.cases (plate_key, violation_type, violation_at) WHERE plate_key <> '';

-- Owner personal data lives apart from the case, so that a query for a role without access
-- cannot pick it up by accident.
CREATE TABLE portal.owners (
    case_id      text PRIMARY KEY REFERENCES portal.cases (case_id),
    kind         text NOT NULL,
    name         text NOT NULL,
    national_id  text NOT NULL DEFAULT '',
    address      text NOT NULL DEFAULT '',
    commune_code text NOT NULL DEFAULT '',
    province     text NOT NULL DEFAULT '',
    phone        text NOT NULL DEFAULT '',
    email        text NOT NULL DEFAULT ''
);

-- Every change of state, written by the trigger below (who did it is in the case row and the
-- CASES stream; this is the timeline shown to the officer).
CREATE TABLE portal.case_history (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    case_id    text NOT NULL REFERENCES portal.cases (case_id),
    from_state text,
    to_state   text NOT NULL,
    at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX case_history_case ON portal.case_history (case_id, id);

-- A case is reviewed once: the review columns are written with the move out of identified /
-- unidentified and never again (repeating the decision a case is already in is not a change of
-- state, and would otherwise let a second officer overwrite the first).
CREATE FUNCTION portal.check_case_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.state NOT IN ('detected', 'identified', 'unidentified') THEN
            RAISE EXCEPTION 'a case starts as detected, identified or unidentified, not %', NEW.state
                USING ERRCODE = 'RW409';
        END IF;
        RETURN NEW;  -- its history row is written after the insert (case_history references it)
    END IF;
    IF OLD.state IN ('rejected', 'resolved', 'merged') THEN
        RAISE EXCEPTION 'case % is % and can no longer change', OLD.case_id, OLD.state USING ERRCODE = 'RW409';
    END IF;
    IF NEW.state IS DISTINCT FROM OLD.state THEN
        IF NOT EXISTS (SELECT 1 FROM portal.case_transitions
                       WHERE from_state = OLD.state AND to_state = NEW.state) THEN
            RAISE EXCEPTION 'case %: % -> % is not an allowed transition', OLD.case_id, OLD.state, NEW.state
                USING ERRCODE = 'RW409';
        END IF;
        IF NEW.state = 'merged' AND NOT EXISTS (
                SELECT 1 FROM portal.cases t WHERE t.case_id = NEW.merged_into AND t.case_id <> NEW.case_id
                AND t.state NOT IN ('merged', 'rejected', 'detected')) THEN
            RAISE EXCEPTION 'case % can only be merged into another case still in the workflow, not %',
                OLD.case_id, NEW.merged_into USING ERRCODE = 'RW409';
        END IF;
        IF OLD.state = 'confirmed' AND NEW.state = 'merged' AND OLD.notice_hold IS NULL THEN
            RAISE EXCEPTION 'case % is confirmed and its notices may be out: it cannot be merged', OLD.case_id
                USING ERRCODE = 'RW409';
        END IF;
        INSERT INTO portal.case_history (case_id, from_state, to_state) VALUES (NEW.case_id, OLD.state, NEW.state);
    END IF;
    IF OLD.reviewed_at IS NOT NULL AND (NEW.reviewed_at IS DISTINCT FROM OLD.reviewed_at
                                        OR NEW.reviewer IS DISTINCT FROM OLD.reviewer
                                        OR NEW.reject_reason IS DISTINCT FROM OLD.reject_reason) THEN
        RAISE EXCEPTION 'case % was already reviewed by % and cannot be reviewed again', OLD.case_id, OLD.reviewer
            USING ERRCODE = 'RW409';
    END IF;
    IF NEW.reviewed_at IS NOT NULL AND OLD.reviewed_at IS NULL
       AND NOT (OLD.state IN ('identified', 'unidentified') AND NEW.state IN ('confirmed', 'rejected')) THEN
        RAISE EXCEPTION 'case %: a review moves a case out of identified or unidentified', OLD.case_id
            USING ERRCODE = 'RW409';
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE TRIGGER cases_transition BEFORE INSERT OR UPDATE ON portal.cases
    FOR EACH ROW EXECUTE FUNCTION portal.check_case_transition();

CREATE FUNCTION portal.record_case_opened() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO portal.case_history (case_id, from_state, to_state) VALUES (NEW.case_id, NULL, NEW.state);
    RETURN NULL;
END
$$;

CREATE TRIGGER cases_opened AFTER INSERT ON portal.cases
    FOR EACH ROW EXECUTE FUNCTION portal.record_case_opened();

-- Notices as reported by notify (sent, failed or held); notice_id + kind + channel + outcome is unique.
CREATE TABLE portal.notices (
    event_id    text PRIMARY KEY,
    case_id     text NOT NULL REFERENCES portal.cases (case_id),
    notice_id   text NOT NULL,
    kind        text NOT NULL,
    channel     text NOT NULL,
    outcome     text NOT NULL CHECK (outcome IN ('sent', 'failed', 'held')),
    recipient   text NOT NULL DEFAULT '',
    reason      text NOT NULL DEFAULT '',
    occurred_at timestamptz NOT NULL,
    respond_by  timestamptz
);
CREATE INDEX notices_case ON portal.notices (case_id);

-- Telemetry for the statistics (counts per window and class; last status per camera).
CREATE TABLE portal.vehicle_counts (
    event_id      text NOT NULL,
    camera_id     text NOT NULL,
    window_start  timestamptz NOT NULL,
    window_end    timestamptz NOT NULL,
    vehicle_class text NOT NULL,
    lane          text NOT NULL DEFAULT '',
    count         integer NOT NULL CHECK (count >= 0),
    PRIMARY KEY (event_id, vehicle_class, lane)
);
CREATE INDEX vehicle_counts_camera ON portal.vehicle_counts (camera_id, window_start);

CREATE TABLE portal.camera_health (
    camera_id        text PRIMARY KEY,
    state            text NOT NULL,
    reason           text NOT NULL DEFAULT '',
    occurred_at      timestamptz NOT NULL,
    state_since      timestamptz NOT NULL,
    fps_in           double precision NOT NULL DEFAULT 0,
    fps_out          double precision NOT NULL DEFAULT 0,
    frames_dropped   bigint NOT NULL DEFAULT 0,
    decode_errors    bigint NOT NULL DEFAULT 0,
    reconnects       bigint NOT NULL DEFAULT 0,
    last_frame_age_s double precision,
    changes          integer NOT NULL DEFAULT 0
);

-- Events decided here and published after commit; a row stays until NATS acknowledged it, so
-- a crash between the commit and the publish delays the event, never loses it.
CREATE TABLE portal.outbox (
    event_id     text PRIMARY KEY,
    subject      text NOT NULL,
    payload      bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_pending ON portal.outbox (created_at) WHERE published_at IS NULL;

-- Append-only, hash-chained audit log (DESIGN.md §5): each row's hash covers its content and
-- the previous row's hash, so that an edited or deleted row breaks the chain at that point.
CREATE TABLE portal.audit (
    seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL,
    user_id    text NOT NULL,
    agency     text NOT NULL,
    role       text NOT NULL,
    action     text NOT NULL,
    object     text NOT NULL,
    purpose    text NOT NULL,
    client     text NOT NULL DEFAULT '',
    prev_hash  text NOT NULL,
    hash       text NOT NULL UNIQUE
);

CREATE FUNCTION portal.audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'portal.audit is append-only (% refused)', TG_OP USING ERRCODE = 'RW403';
END
$$;

CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON portal.audit
    FOR EACH ROW EXECUTE FUNCTION portal.audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON portal.audit
    FOR EACH STATEMENT EXECUTE FUNCTION portal.audit_append_only();
