-- Retention: what the purge job removed (one row per object and data class), so that a purge is
-- done once, a re-run finds nothing to do, and a reader learns why an object is gone. Each purge
-- also writes a row to the audit log (action 'purge').
CREATE TABLE portal.purges (
    data_class text NOT NULL,         -- rejected_evidence, closed_evidence, owner_snapshot
    object     text NOT NULL,         -- the evidence SHA-256, or the case id of an owner snapshot
    case_id    text NOT NULL,
    due_at     timestamptz NOT NULL,  -- closed_at + retention
    purged_at  timestamptz NOT NULL,
    PRIMARY KEY (data_class, object)
);
