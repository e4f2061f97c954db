-- The notify service: cases it has acted on, the notices it owes, the documents it sent, the
-- deadlines it watches, the events it must publish and the webhook deliveries it owes.
-- Exactly-once rests on the unique keys here: a redelivered case event, a second replica or a
-- restart inserts nothing new, and every send is claimed by one replica at a time (lease).

CREATE SCHEMA IF NOT EXISTS notify;

CREATE TABLE notify.cases (
    case_id       text PRIMARY KEY,
    camera_id     text NOT NULL,
    agency        text NOT NULL,
    reviewed      jsonb NOT NULL,        -- the case.reviewed event
    vehicle       jsonb NOT NULL,        -- registry answer at the time of the notice
    owner         jsonb NOT NULL,        -- personal data: this database is police-only
    status        text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    created_at    timestamptz NOT NULL,
    resolved_at   timestamptz,
    resolved_event_id text
);

-- Rendered letters, kept as sent: a retry sends the same bytes; the hash is in notice.sent.
CREATE TABLE notify.documents (
    sha256        text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    content_type  text NOT NULL,
    content       bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE notify.notices (
    notice_id        text PRIMARY KEY,
    case_id          text NOT NULL REFERENCES notify.cases (case_id),
    kind             text NOT NULL CHECK (kind IN ('owner_notice', 'commune_transfer', 'inspection_warning',
                                                   'inspection_lifted')),
    channel          text NOT NULL CHECK (channel IN ('email', 'sms', 'post', 'webhook', 'inspection_registry',
                                                      'commune_police')),
    recipient        text NOT NULL,
    transport        text NOT NULL CHECK (transport IN ('smtp', 'sms', 'spool', 'webhook')),
    address          text NOT NULL,
    secret_env       text NOT NULL DEFAULT '',
    document_sha256  text REFERENCES notify.documents (sha256),
    respond_by       timestamptz,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'cancelled')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    lease_until      timestamptz,
    last_error       text,
    created_at       timestamptz NOT NULL,
    sent_at          timestamptz,
    UNIQUE (case_id, kind, channel)
);

CREATE INDEX notices_due ON notify.notices (next_attempt_at) WHERE status = 'pending';
CREATE INDEX notices_leased ON notify.notices (lease_until) WHERE status = 'sending';

-- Deadlines survive restarts: any replica's tick takes the due ones with FOR UPDATE SKIP LOCKED.
CREATE TABLE notify.deadlines (
    case_id      text NOT NULL REFERENCES notify.cases (case_id),
    kind         text NOT NULL CHECK (kind IN ('inspection_warning')),
    due_at       timestamptz NOT NULL,
    status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'cancelled')),
    done_at      timestamptz,
    PRIMARY KEY (case_id, kind)
);

CREATE INDEX deadlines_due ON notify.deadlines (due_at) WHERE status = 'pending';

-- Transactional outbox: an event is written with the state change that causes it and published
-- afterwards (Nats-Msg-Id = event_id), so a crash between the two loses nothing.
CREATE TABLE notify.outbox (
    event_id      text PRIMARY KEY,
    subject       text NOT NULL,
    payload       bytea NOT NULL,
    created_at    timestamptz NOT NULL,
    published_at  timestamptz
);

CREATE INDEX outbox_unpublished ON notify.outbox (created_at) WHERE published_at IS NULL;

-- Webhook deliveries to subscribers: one per (subscriber, event), retried with backoff, dead
-- after the configured attempts; every attempt is logged.
CREATE TABLE notify.webhook_deliveries (
    delivery_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscriber       text NOT NULL,
    event_id         text NOT NULL,
    subject          text NOT NULL,
    url              text NOT NULL,
    secret_env       text NOT NULL,
    body             bytea NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivering', 'delivered', 'dead')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    lease_until      timestamptz,
    created_at       timestamptz NOT NULL,
    delivered_at     timestamptz,
    UNIQUE (subscriber, event_id)
);

CREATE INDEX webhook_deliveries_due ON notify.webhook_deliveries (next_attempt_at) WHERE status = 'pending';

CREATE TABLE notify.webhook_attempts (
    delivery_id   bigint NOT NULL REFERENCES notify.webhook_deliveries (delivery_id),
    attempt       integer NOT NULL,
    at            timestamptz NOT NULL,
    status_code   integer,
    error         text,
    duration_ms   double precision NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);
