-- One event, one case: a case opened for the same plate, violation and place as an open case
-- within the duplicate window is flagged (duplicate_of: "có thể trùng với CASE-…"), and the
-- reviewer may merge it into that case. `merged` is a final state, reached only with the case it
-- was merged into, which must be another case still in the workflow (not merged, rejected).
-- Cases notify holds (notice.held: no legal basis for the vehicle class, possible duplicate)
-- carry the reason; a plate confirmed against the vehicle class's plate format carries the
-- reviewer's override reason (the override is also in the audit log).

INSERT INTO portal.case_states (state, open) VALUES ('merged', false);
INSERT INTO portal.case_transitions (from_state, to_state) VALUES
    ('identified', 'merged'), ('unidentified', 'merged'), ('confirmed', 'merged');

ALTER TABLE portal.cases
    ADD COLUMN duplicate_of         text REFERENCES portal.cases (case_id),
    ADD COLUMN merged_into          text REFERENCES portal.cases (case_id),
    ADD COLUMN merged_by            text,
    ADD COLUMN merged_at            timestamptz,
    ADD COLUMN distinct_from        text[] NOT NULL DEFAULT '{}',
    ADD COLUMN notice_hold          text CHECK (notice_hold IN ('no_legal_basis', 'possible_duplicate')),
    ADD COLUMN notice_hold_detail   text NOT NULL DEFAULT '',
    ADD COLUMN plate_class_override text,
    ADD CONSTRAINT merged_has_target CHECK ((state = 'merged') = (merged_into IS NOT NULL)),
    ADD CONSTRAINT not_merged_into_itself CHECK (merged_into IS DISTINCT FROM case_id);
CREATE INDEX cases_same_event ON portal.cases (plate_key, violation_type, violation_at) WHERE plate_key <> '';

ALTER TABLE portal.notices DROP CONSTRAINT notices_outcome_check;
ALTER TABLE portal.notices ADD CONSTRAINT notices_outcome_check CHECK (outcome IN ('sent', 'failed', 'held'));

CREATE OR REPLACE FUNCTION portal.check_case_transition() RETURNS trigger LANGUAGE plpgsql AS $$
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
