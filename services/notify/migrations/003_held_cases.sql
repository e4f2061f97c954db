-- Cases notify will not send without a person acting: no legal basis and fine for the case's
-- violation type and vehicle class ("cần căn cứ pháp lý"), or a possible duplicate of a case
-- already notified (same plate, violation and place within the duplicate window). A held case
-- has no notices; `notice.held` tells the portal why. The columns below also let the duplicate
-- check find earlier cases without decoding every stored event.

ALTER TABLE notify.cases DROP CONSTRAINT cases_status_check;
ALTER TABLE notify.cases ADD CONSTRAINT cases_status_check CHECK (status IN ('open', 'resolved', 'held'));

ALTER TABLE notify.cases
    ADD COLUMN hold_reason    text CHECK (hold_reason IN ('no_legal_basis', 'possible_duplicate')),
    ADD COLUMN hold_detail    text NOT NULL DEFAULT '',
    ADD COLUMN duplicate_of   text,
    ADD COLUMN plate_key      text NOT NULL DEFAULT '',
    ADD COLUMN violation_type text NOT NULL DEFAULT '',
    ADD COLUMN violation_at   timestamptz,
    ADD COLUMN latitude       double precision,
    ADD COLUMN longitude      double precision;

UPDATE notify.cases SET
    plate_key = regexp_replace(upper(replace(reviewed->>'plate', 'Đ', 'D')), '[^0-9A-Z]', '', 'g'),
    violation_type = reviewed->>'violation_type',
    violation_at = (reviewed->>'violation_at')::timestamptz,
    latitude = (reviewed->'location'->>'latitude')::double precision,
    longitude = (reviewed->'location'->>'longitude')::double precision;

ALTER TABLE notify.cases ADD CONSTRAINT cases_held_has_reason CHECK (status <> 'held' OR hold_reason IS NOT NULL);

CREATE INDEX cases_same_event ON notify.cases (plate_key, violation_type, violation_at);
