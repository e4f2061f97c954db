-- Every owner lookup over the bus (lookup-owner), one row per request, written before the
-- reply leaves: no owner data goes out without its line. Who asked: the account, user and
-- connection name nats-server attests in the Nats-Request-Info header of a request from another
-- account (POLICE imports the endpoint with `share: true`); NULL caller_account means the
-- registry's own account (the services), where the server attests nothing and only the
-- declared `requested_by` says which service. Rows are never changed (trigger below); they are
-- deleted only by retention.
CREATE TABLE registry.owner_lookup_audit (
    seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT now(),
    caller_account  text,
    caller_user     text NOT NULL DEFAULT '',
    caller_name     text NOT NULL DEFAULT '',
    requested_by    text NOT NULL DEFAULT '',
    case_id         text NOT NULL DEFAULT '',
    purpose         text NOT NULL DEFAULT '',
    plate           text NOT NULL,          -- as asked
    plate_normalised text NOT NULL,
    outcome         text NOT NULL CHECK (outcome IN ('found', 'not_found', 'error'))
);

CREATE INDEX owner_lookup_audit_at ON registry.owner_lookup_audit (at);
CREATE INDEX owner_lookup_audit_case ON registry.owner_lookup_audit (case_id) WHERE case_id <> '';
CREATE INDEX owner_lookup_audit_plate ON registry.owner_lookup_audit (plate_normalised);

CREATE FUNCTION registry.owner_lookup_audit_unchanged() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'registry.owner_lookup_audit is append-only (% refused)', TG_OP;
END;
$$;

CREATE TRIGGER owner_lookup_audit_unchanged BEFORE UPDATE ON registry.owner_lookup_audit
    FOR EACH ROW EXECUTE FUNCTION registry.owner_lookup_audit_unchanged();
CREATE TRIGGER owner_lookup_audit_no_truncate BEFORE TRUNCATE ON registry.owner_lookup_audit
    FOR EACH STATEMENT EXECUTE FUNCTION registry.owner_lookup_audit_unchanged();
