-- The bare matching form is not unique: a car's 29B-112.34 and an older motorbike's 29-B1 1234
-- are both 29B11234. The printed plate is what is unique; the bare form stays indexed for
-- matching, and the registry tells such registrations apart by what the camera saw (vehicle
-- class, one- or two-line plate).
ALTER TABLE registry.vehicles DROP CONSTRAINT vehicles_plate_key;
ALTER TABLE registry.vehicles ADD CONSTRAINT vehicles_plate_display_key UNIQUE (plate_display);
CREATE INDEX vehicles_plate ON registry.vehicles (plate);
