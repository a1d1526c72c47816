-- API and broker hardening (issue 10).

-- Failed logins per key ('user:<username>' or 'addr:<client address>') in a fixed window; a key at
-- its limit is refused (429) until the window ends. Written by storage/throttle.py.
CREATE TABLE login_throttle (
    key           text PRIMARY KEY,
    window_start  timestamptz NOT NULL,
    failures      integer NOT NULL CHECK (failures >= 0)
);
CREATE INDEX login_throttle_window ON login_throttle (window_start);

-- MQTT usernames of service accounts (ingest, gateways): the broker has one user namespace, so a
-- device registered under one of them could log in as that service (read every community's
-- telemetry, lock the service out). `yiju devices credentials` adds the names it issues.
CREATE TABLE mqtt_reserved_usernames (
    username    text PRIMARY KEY CHECK (username ~ '^[A-Za-z0-9_-]{1,64}$'),
    reason      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- the names Yiju itself uses (devices/credentials.py RESERVED_USERNAMES; tests check they match)
INSERT INTO mqtt_reserved_usernames (username, reason) VALUES
    ('yiju', 'Yiju'), ('yiju-ingest', 'default ingest account'), ('yiju-gateway', 'default gateway account'),
    ('yiju-commands', 'command publisher'), ('yiju-simulator', 'simulator');

CREATE FUNCTION yiju_device_uid_not_reserved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM mqtt_reserved_usernames WHERE username = NEW.uid) THEN
        RAISE EXCEPTION 'device uid % is a reserved MQTT username', NEW.uid USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER devices_uid_not_reserved BEFORE INSERT OR UPDATE OF uid ON devices
    FOR EACH ROW EXECUTE FUNCTION yiju_device_uid_not_reserved();

-- The device list pages by id within the caller's communities (keyset pagination): without this the
-- planner joins every device of the community before taking the first page (bench/api.py).
CREATE INDEX devices_community_id ON devices (community_id, id);
