-- Yiju core schema: the registry, time series, alarms, findings, commands, dead letters, audit.
-- Time-series tables are created through yiju_create_timeseries(), which makes a TimescaleDB
-- hypertable or a natively range-partitioned table depending on the storage mode the migration
-- runner recorded in yiju_meta before this file ran. Queries are the same in both modes.

CREATE FUNCTION yiju_storage_mode() RETURNS text LANGUAGE sql STABLE AS $$
    SELECT value FROM yiju_meta WHERE key = 'storage_mode'
$$;

CREATE FUNCTION yiju_create_timeseries(tbl text, columns text, time_col text, chunk interval)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF yiju_storage_mode() = 'timescaledb' THEN
        EXECUTE format('CREATE TABLE %I (%s)', tbl, columns);
        PERFORM create_hypertable(tbl::regclass, time_col, chunk_time_interval => chunk);
    ELSE
        -- partitions are created ahead (and dropped by retention) by storage.timeseries
        EXECUTE format('CREATE TABLE %I (%s) PARTITION BY RANGE (%I)', tbl, columns, time_col);
    END IF;
END
$$;

CREATE FUNCTION yiju_chunk_interval() RETURNS interval LANGUAGE sql STABLE AS $$
    SELECT value::interval FROM yiju_meta WHERE key = 'chunk_interval'
$$;

-- The hourly rollup of points, read as points_hourly in both modes.
CREATE FUNCTION yiju_create_rollup() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF yiju_storage_mode() = 'timescaledb' THEN
        -- real-time aggregate: materialised buckets plus the not-yet-materialised tail
        EXECUTE $view$
            CREATE MATERIALIZED VIEW points_hourly
            WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
            SELECT device_id, metric, channel, time_bucket(INTERVAL '1 hour', ts) AS bucket,
                   count(*) AS samples, min(value) AS min_value, max(value) AS max_value,
                   avg(value) AS avg_value, sum(value) AS sum_value
            FROM points
            GROUP BY device_id, metric, channel, time_bucket(INTERVAL '1 hour', ts)
            WITH NO DATA
        $view$;
    ELSE
        -- maintained by storage.timeseries.refresh_rollup()
        CREATE TABLE points_hourly (
            device_id  integer NOT NULL,
            metric     text NOT NULL,
            channel    smallint NOT NULL,
            bucket     timestamptz NOT NULL,
            samples    bigint NOT NULL,
            min_value  double precision,
            max_value  double precision,
            avg_value  double precision,
            sum_value  double precision,
            PRIMARY KEY (device_id, metric, channel, bucket)
        );
    END IF;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Registry: organisations -> communities -> buildings -> locations; devices

CREATE TABLE organisations (
    id          bigserial PRIMARY KEY,
    code        text NOT NULL UNIQUE,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE communities (
    id              bigserial PRIMARY KEY,
    organisation_id bigint REFERENCES organisations (id) ON DELETE RESTRICT,
    code            text NOT NULL UNIQUE CHECK (code ~ '^[A-Za-z0-9_-]{1,64}$'),
    name            text NOT NULL,
    city            text,
    address         text,
    timezone        text NOT NULL DEFAULT 'Asia/Shanghai',
    -- per-community overrides of alert-engine thresholds (see alerts settings for the defaults)
    settings        jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE buildings (
    id            bigserial PRIMARY KEY,
    community_id  bigint NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    code          text NOT NULL,
    name          text NOT NULL,
    floors        integer CHECK (floors BETWEEN 1 AND 200),
    units         integer CHECK (units BETWEEN 1 AND 50),
    high_rise     boolean NOT NULL DEFAULT false,
    UNIQUE (community_id, code)
);

CREATE TABLE locations (
    id                bigserial PRIMARY KEY,
    community_id      bigint NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    building_id       bigint REFERENCES buildings (id) ON DELETE CASCADE,
    kind              text NOT NULL CHECK (kind IN (
                          'building', 'floor', 'unit', 'stairwell', 'lobby', 'basement', 'shed',
                          'road', 'entrance', 'parking', 'plant_room', 'duty_room', 'other')),
    code              text NOT NULL,
    name              text NOT NULL,
    floor             integer,
    unit              text,
    -- doors on evacuation routes must be released on fire (GB 50396-2007 §9.0.1(2), GB 51348-2019 §14.4.3)
    evacuation_route  boolean NOT NULL DEFAULT false,
    UNIQUE (community_id, code)
);

CREATE TABLE devices (
    id                serial PRIMARY KEY,        -- compact key for time-series rows
    uid               text NOT NULL UNIQUE CHECK (uid ~ '^[A-Za-z0-9_-]{1,64}$'),  -- MQTT username and topic id
    community_id      bigint NOT NULL REFERENCES communities (id) ON DELETE RESTRICT,
    location_id       bigint REFERENCES locations (id) ON DELETE SET NULL,
    family            text NOT NULL CHECK (family IN (
                          'ebike_charger', 'smoke_alarm', 'gas_alarm', 'light', 'elevator',
                          'access_door', 'cctv_recorder')),
    model             text,
    vendor            text,
    install_date      date,
    retrofit          boolean NOT NULL DEFAULT false,   -- e.g. elevators added to existing buildings
    credentials_hash  text,
    metadata          jsonb NOT NULL DEFAULT '{}'::jsonb,
    enabled           boolean NOT NULL DEFAULT true,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_community_family ON devices (community_id, family);
CREATE INDEX devices_location ON devices (location_id);

-- Presence is maintained in batches by ingest (never a write per message).
CREATE TABLE device_presence (
    device_id          integer PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    online             boolean NOT NULL DEFAULT false,
    status             text,
    last_seen          timestamptz,
    last_seq           bigint,
    status_changed_at  timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- ---------------------------------------------------------------------------------------------
-- Time series

-- One row per telemetry message as the device sent it (evidence of "what the device said").
SELECT yiju_create_timeseries('telemetry', $cols$
    ts           timestamptz NOT NULL,
    device_id    integer NOT NULL,
    seq          bigint NOT NULL,
    received_at  timestamptz NOT NULL,
    body         jsonb NOT NULL
$cols$, 'ts', yiju_chunk_interval());
-- natural key: redelivered messages never create duplicates
CREATE UNIQUE INDEX telemetry_natural_key ON telemetry (device_id, ts, seq);

-- Numeric facts extracted from telemetry: one row per (message, metric, channel) for charts and rollups.
SELECT yiju_create_timeseries('points', $cols$
    ts         timestamptz NOT NULL,
    device_id  integer NOT NULL,
    metric     text NOT NULL,
    channel    smallint NOT NULL DEFAULT 0,
    value      double precision NOT NULL
$cols$, 'ts', yiju_chunk_interval());
CREATE INDEX points_device_metric_ts ON points (device_id, metric, ts DESC);

-- Device events: session stops with their reason, faults, alarms, door events, recorder gaps, …
SELECT yiju_create_timeseries('device_events', $cols$
    ts           timestamptz NOT NULL,
    device_id    integer NOT NULL,
    seq          bigint NOT NULL,
    received_at  timestamptz NOT NULL,
    kind         text NOT NULL,
    code         text,
    channel      smallint NOT NULL DEFAULT 0,
    body         jsonb NOT NULL
$cols$, 'ts', yiju_chunk_interval());
CREATE UNIQUE INDEX device_events_natural_key ON device_events (device_id, ts, seq);
CREATE INDEX device_events_device_kind_ts ON device_events (device_id, kind, ts DESC);

-- Hourly rollup of points: a continuous aggregate with TimescaleDB, an application-maintained
-- table otherwise. Both are read as points_hourly with the same columns.
SELECT yiju_create_rollup();

-- ---------------------------------------------------------------------------------------------
-- Alarms (domain.md §4)

CREATE TABLE alarms (
    id               bigserial PRIMARY KEY,
    community_id     bigint NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    device_id        integer NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    type             text NOT NULL,
    severity         text NOT NULL CHECK (severity IN ('critical', 'major', 'minor', 'warning')),
    status           text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'cleared')),
    acknowledged     boolean NOT NULL DEFAULT false,
    acknowledged_at  timestamptz,
    acknowledged_by  text,
    cleared_at       timestamptz,
    cleared_by       text,
    first_at         timestamptz NOT NULL,
    last_at          timestamptz NOT NULL,
    occurrences      integer NOT NULL DEFAULT 1 CHECK (occurrences >= 1),
    source           text NOT NULL CHECK (source IN ('device', 'engine', 'compliance', 'linkage', 'operator')),
    details          jsonb NOT NULL DEFAULT '{}'::jsonb,
    CHECK ((status = 'cleared') = (cleared_at IS NOT NULL)),
    CHECK (acknowledged = (acknowledged_at IS NOT NULL))
);
-- At most one open alarm per device and type, whatever the concurrency (domain.md §4).
CREATE UNIQUE INDEX alarms_one_open_per_device_type ON alarms (device_id, type) WHERE status = 'active';
CREATE INDEX alarms_community_status ON alarms (community_id, status, severity, last_at DESC);
CREATE INDEX alarms_first_at ON alarms (first_at DESC);

CREATE TABLE alarm_transitions (
    id        bigserial PRIMARY KEY,
    alarm_id  bigint NOT NULL REFERENCES alarms (id) ON DELETE CASCADE,
    at        timestamptz NOT NULL,
    action    text NOT NULL CHECK (action IN (
                  'raised', 'updated', 'acknowledged', 'commented', 'cleared', 'escalated', 'notified')),
    actor     text NOT NULL,
    comment   text,
    details   jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX alarm_transitions_alarm ON alarm_transitions (alarm_id, at);

-- ---------------------------------------------------------------------------------------------
-- Compliance findings (domain.md §5): one row per evaluated obligation, compliant or not.

CREATE TABLE compliance_findings (
    id            bigserial PRIMARY KEY,
    community_id  bigint NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    device_id     integer NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    check_name    text NOT NULL CHECK (check_name IN (
                      'auto_cutoff', 'protection_config', 'fault_alarm', 'cctv_retention',
                      'linkage', 'rescue')),
    kind          text NOT NULL,          -- e.g. over_temperature, silent_fault, retention_short
    compliant     boolean NOT NULL,
    observed_at   timestamptz NOT NULL,   -- when the obligation was decided
    trigger_at    timestamptz,            -- when the triggering condition was first seen
    deadline_s    double precision,
    measured_s    double precision,       -- e.g. the measured cutoff delay
    channel       smallint NOT NULL DEFAULT 0,
    details       jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX compliance_findings_scope ON compliance_findings (community_id, check_name, observed_at DESC);
CREATE INDEX compliance_findings_device ON compliance_findings (device_id, observed_at DESC);

-- ---------------------------------------------------------------------------------------------
-- Commands down to devices, and their acknowledgements

CREATE TABLE commands (
    id            bigserial PRIMARY KEY,
    command_uuid  uuid NOT NULL UNIQUE,      -- the id on the wire and the idempotency key
    device_id     integer NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    name          text NOT NULL,
    params        jsonb NOT NULL DEFAULT '{}'::jsonb,
    requested_by  text NOT NULL,
    requested_at  timestamptz NOT NULL,
    sent_at       timestamptz,
    status        text NOT NULL DEFAULT 'pending' CHECK (status IN (
                      'pending', 'sent', 'acknowledged', 'rejected', 'verified', 'failed', 'expired')),
    alarm_id      bigint REFERENCES alarms (id) ON DELETE SET NULL,
    details       jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX commands_device ON commands (device_id, requested_at DESC);

CREATE TABLE command_acks (
    id           bigserial PRIMARY KEY,
    command_id   bigint NOT NULL REFERENCES commands (id) ON DELETE CASCADE,
    received_at  timestamptz NOT NULL,
    ok           boolean NOT NULL,
    code         text,
    body         jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX command_acks_command ON command_acks (command_id);

-- ---------------------------------------------------------------------------------------------
-- Dead letters: every inbound message that could not be accepted, with the reason.

CREATE TABLE dead_letters (
    id            bigserial PRIMARY KEY,
    received_at   timestamptz NOT NULL,
    topic         text NOT NULL,
    payload       bytea NOT NULL,            -- truncated copy
    payload_size  integer NOT NULL,          -- the original size in bytes
    reason        text NOT NULL,
    detail        text NOT NULL DEFAULT '',
    device_uid    text,
    family        text
);
CREATE INDEX dead_letters_received ON dead_letters (received_at DESC);
CREATE INDEX dead_letters_reason ON dead_letters (reason, received_at DESC);

-- ---------------------------------------------------------------------------------------------
-- Audit log of every mutation made by people or integrations

CREATE TABLE audit_log (
    id            bigserial PRIMARY KEY,
    at            timestamptz NOT NULL DEFAULT now(),
    actor         text NOT NULL,
    action        text NOT NULL,
    target_type   text NOT NULL,
    target_id     text,
    community_id  bigint REFERENCES communities (id) ON DELETE SET NULL,
    details       jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_at ON audit_log (at DESC);
