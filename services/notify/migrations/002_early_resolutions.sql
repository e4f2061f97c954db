-- case.resolved can arrive before notify has recorded the case (another replica still looking
-- the owner up, or case.reviewed waiting for a retry). The resolution is kept here, and the
-- case, when it arrives, is recorded as resolved with no notices: nothing is sent for a case
-- that is already closed, and the resolution is not lost or retried into the dead letters.
CREATE TABLE notify.early_resolutions (
    case_id      text PRIMARY KEY,
    event_id     text NOT NULL,
    received_at  timestamptz NOT NULL
);
