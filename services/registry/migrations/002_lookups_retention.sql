-- Recorded lookup outcomes contain owner personal data; the service deletes those older than
-- LOOKUP_RETENTION_DAYS (the portal keeps the case), so they need an index on their age.
CREATE INDEX lookups_decided_at ON registry.lookups (decided_at);
