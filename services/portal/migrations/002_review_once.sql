-- A case is reviewed once. Repeating the decision it is already in (confirmed → confirmed) is
-- not a change of state, so 001's trigger let it through and a second officer's decision
-- overwrote the first; the review columns are now written once, with the move out of
-- identified / unidentified, and never again.

CREATE OR REPLACE FUNCTION portal.check_case_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.state NOT IN ('detected', 'identified', 'unidentified') THEN
            RAISE EXCEPTION 'a case starts as detected, identified or unidentified, not %', NEW.state
                USING ERRCODE = 'RW409';
        END IF;
        RETURN NEW;  -- its history row is written after the insert (case_history references it)
    END IF;
    IF OLD.state IN ('rejected', 'resolved') THEN
        RAISE EXCEPTION 'case % is % and can no longer change', OLD.case_id, OLD.state USING ERRCODE = 'RW409';
    END IF;
    IF NEW.state IS DISTINCT FROM OLD.state THEN
        IF NOT EXISTS (SELECT 1 FROM portal.case_transitions
                       WHERE from_state = OLD.state AND to_state = NEW.state) THEN
            RAISE EXCEPTION 'case %: % -> % is not an allowed transition', OLD.case_id, OLD.state, NEW.state
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
