-- Where a community is (issue 19): scheduled lamps are due on after sunset at the community's
-- location (alerts/core/light.py, devices/solar.py). Both or neither: a half-known location is
-- refused rather than guessed. Per-device rule parameters (a door's held-open limit, an elevator's
-- floors served and rated speed) live in devices.metadata (alerts.config.DeviceParams).

ALTER TABLE communities
    ADD COLUMN latitude  double precision CHECK (latitude BETWEEN -90 AND 90),
    ADD COLUMN longitude double precision CHECK (longitude BETWEEN -180 AND 180),
    ADD CONSTRAINT communities_location_complete CHECK ((latitude IS NULL) = (longitude IS NULL));
