-- An owner's appeal (khiếu nại) against a case, as the police record it: while it is open the
-- case's evidence and decision are contested, so it is not handed out as training data.
ALTER TABLE portal.cases
    ADD COLUMN appeal_lodged_at timestamptz,
    ADD COLUMN appeal_note      text;

-- Every training-data export (roadwatch dataset export): who, why, what period, how much, and the
-- SHA-256 of its manifest, so that a dataset found later can be traced to the export that made it.
-- The export is also a line in the audit log (action 'dataset_export').
CREATE TABLE portal.dataset_exports (
    export_id        text PRIMARY KEY,
    at               timestamptz NOT NULL,
    user_id          text NOT NULL,
    agency           text NOT NULL,
    purpose          text NOT NULL,
    since            date NOT NULL,
    cases            integer NOT NULL,
    images           integer NOT NULL,
    plates           integer NOT NULL,
    under_appeal     integer NOT NULL,   -- cases left out because an appeal is open
    manifest_sha256  text NOT NULL
);
