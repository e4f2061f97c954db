-- The registry: a copy of the vehicle-registration data the police receive, plus the hotlist
-- of wanted vehicles. Value lists are CHECK constraints (not enum types) so that a later
-- migration can widen them with a plain ALTER inside a transaction.

CREATE SCHEMA IF NOT EXISTS registry;

CREATE TABLE registry.owners (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('person', 'organisation')),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- 12-digit citizen identity number for a person, 10- or 13-digit tax code for an organisation
    national_id   text NOT NULL UNIQUE CHECK (national_id ~ '^[0-9]{10,13}$'),
    address       text NOT NULL,
    commune_code  text NOT NULL CHECK (commune_code ~ '^[0-9]{5}$'),
    province      text NOT NULL,
    phone         text,
    email         text,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Commune police look up the cases of the owners in their commune.
CREATE INDEX owners_commune_code ON registry.owners (commune_code);

CREATE TABLE registry.vehicles (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- bare [0-9A-Z] form used for matching camera reads, e.g. 30A12345, 29B112345
    plate              text NOT NULL UNIQUE CHECK (plate ~ '^[0-9A-Z]{5,12}$'),
    -- as printed, e.g. 30A-123.45 or 29-B1 123.45
    plate_display      text NOT NULL,
    plate_colour       text NOT NULL CHECK (plate_colour IN ('white', 'yellow', 'blue', 'red')),
    vehicle_type       text NOT NULL CHECK (vehicle_type IN ('motorcycle', 'car', 'van', 'truck', 'bus')),
    brand              text NOT NULL,
    colour             text NOT NULL CHECK (colour IN ('black', 'white', 'silver', 'grey', 'red', 'blue',
                                                       'yellow', 'green', 'brown', 'orange', 'other')),
    registration_date  date NOT NULL,
    inspection_status  text NOT NULL CHECK (inspection_status IN ('valid', 'expired', 'held', 'not_required')),
    inspection_expires date,
    owner_id           bigint NOT NULL REFERENCES registry.owners (id),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX vehicles_owner_id ON registry.vehicles (owner_id);

CREATE TABLE registry.hotlist (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    plate          text NOT NULL CHECK (plate ~ '^[0-9A-Z]{5,12}$'),
    plate_display  text NOT NULL,
    reason         text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    agency         text NOT NULL CHECK (agency ~ '^[a-z0-9-]+$'),
    valid_from     timestamptz NOT NULL,
    valid_to       timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (valid_to IS NULL OR valid_to > valid_from),
    UNIQUE (plate, agency, valid_from)
);

CREATE INDEX hotlist_plate ON registry.hotlist (plate);

-- Replicas keep the hotlist in memory (it is checked against every detection); a change wakes
-- them through LISTEN registry_hotlist instead of waiting for the next periodic reload.
CREATE FUNCTION registry.hotlist_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('registry_hotlist', TG_OP);
    RETURN NULL;
END
$$;

CREATE TRIGGER hotlist_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON registry.hotlist
    FOR EACH STATEMENT EXECUTE FUNCTION registry.hotlist_changed();

-- The outcome of every violation looked up, keyed by the violation id: a redelivered violation
-- republishes the recorded outcome (same event id) instead of deciding again on data that may
-- have changed in between.
CREATE TABLE registry.lookups (
    violation_id  text PRIMARY KEY,
    outcome       text NOT NULL CHECK (outcome IN ('identified', 'unidentified')),
    subject       text NOT NULL,
    event_id      text NOT NULL,
    payload       bytea NOT NULL,
    decided_at    timestamptz NOT NULL DEFAULT now()
);
