-- The coordination reports mailed on schedule (reports: in NOTIFY_CONFIG): one row per agency,
-- schedule and period, claimed by the replica that sends it (so each period goes out once however
-- many replicas run), kept after sending as the record of what went to whom and when.
CREATE TABLE notify.report_runs (
    agency          text NOT NULL,
    every           text NOT NULL CHECK (every IN ('week', 'month')),
    period_start    date NOT NULL,   -- first local day
    period_end      date NOT NULL,   -- last local day
    status          text NOT NULL CHECK (status IN ('sending', 'sent', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    claimed_at      timestamptz NOT NULL,
    next_attempt_at timestamptz,
    sent_at         timestamptz,
    recipients      text[] NOT NULL DEFAULT '{}',
    last_error      text NOT NULL DEFAULT '',
    PRIMARY KEY (agency, every, period_start)
);
