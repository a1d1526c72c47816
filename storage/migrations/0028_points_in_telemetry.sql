-- The numeric facts of a telemetry message move into the message's own row (issue 18): PostgreSQL
-- wrote 1 telemetry row and ~5.9 points rows per message (each a heap tuple, an index entry and, with
-- TimescaleDB, a continuous-aggregate invalidation), where a plain store writes one. Now each message
-- writes one row, its points as three parallel arrays (metric, channel, value); the `points` view
-- unnests them with the columns the table had, so readers keep their queries.
--
-- Existing installations keep every point: the old table becomes `points_legacy` and the view reads
-- it too until retention has dropped it (storage/timeseries.py keeps its retention and compression).
-- The hourly rollup can no longer be a TimescaleDB continuous aggregate (they cannot unnest), so it is
-- application-maintained in both modes (storage/timeseries.py refresh_recent / refresh_pending): the
-- table `points_rollup` holds the hours up to a watermark, and the `points_hourly` view adds the hours
-- after it from the raw rows, as the real-time continuous aggregate did.

ALTER TABLE telemetry ADD COLUMN point_metrics text[];
ALTER TABLE telemetry ADD COLUMN point_channels smallint[];
ALTER TABLE telemetry ADD COLUMN point_values double precision[];

-- the hours of points_rollup that are materialised: [.., upto); later hours are read from the raw rows
CREATE TABLE rollup_watermark (
    id    boolean PRIMARY KEY DEFAULT true CHECK (id),
    upto  timestamptz NOT NULL
);

CREATE FUNCTION yiju_migrate_rollup() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF yiju_storage_mode() = 'timescaledb' THEN
        PERFORM yiju_create_timeseries('points_rollup', $cols$
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
        $cols$, 'bucket', yiju_chunk_interval() * 10);  -- 10x: what the continuous aggregate used
        -- everything the real-time aggregate answers for the completed hours (materialised + its tail)
        INSERT INTO points_rollup
        SELECT device_id, metric, channel, bucket, samples, min_value, max_value, avg_value, sum_value
        FROM points_hourly WHERE bucket < date_trunc('hour', now(), 'UTC');
        -- a new installation (nothing rolled up yet) starts from the beginning: its first refresh
        -- materialises whatever raw rows there are
        INSERT INTO rollup_watermark (upto)
        SELECT CASE WHEN EXISTS (SELECT 1 FROM points_rollup) THEN date_trunc('hour', now(), 'UTC')
                    ELSE '2000-01-01 00:00:00+00' END;
        DROP MATERIALIZED VIEW points_hourly;  -- and its refresh, retention and compression policies
    ELSE
        ALTER TABLE points_hourly RENAME TO points_rollup;
        ALTER TABLE points_rollup RENAME CONSTRAINT points_hourly_pkey TO points_rollup_pkey;
        -- the newest bucket may be a partial hour: it is read from the raw rows until refreshed
        INSERT INTO rollup_watermark (upto)
        SELECT coalesce(max(bucket), '2000-01-01 00:00:00+00') FROM points_rollup;
        -- the refresh reads a time range of all devices; telemetry has no index leading with ts in
        -- this mode (TimescaleDB adds one to every hypertable). BRIN: rows arrive in time order, and
        -- it costs ingest next to nothing (new pages stay unsummarised until vacuum).
        CREATE INDEX telemetry_ts_brin ON telemetry USING brin (ts);
    END IF;
END
$$;
SELECT yiju_migrate_rollup();
DROP FUNCTION yiju_migrate_rollup();

ALTER TABLE points RENAME TO points_legacy;

CREATE VIEW points AS
SELECT t.ts, t.device_id, p.metric, p.channel, p.value
FROM telemetry t, unnest(t.point_metrics, t.point_channels, t.point_values) AS p (metric, channel, value)
UNION ALL
SELECT ts, device_id, metric, channel, value FROM points_legacy;

CREATE FUNCTION yiju_rollup_upto() RETURNS timestamptz LANGUAGE sql STABLE AS $$
    SELECT upto FROM rollup_watermark
$$;

-- read as before: materialised hours, then the hours after the watermark aggregated from the raw rows
CREATE VIEW points_hourly AS
SELECT device_id, metric, channel, bucket, samples, min_value, max_value, avg_value, sum_value
FROM points_rollup WHERE bucket < yiju_rollup_upto()
UNION ALL
SELECT device_id, metric, channel, date_trunc('hour', ts, 'UTC') AS bucket, count(*) AS samples,
       min(value) AS min_value, max(value) AS max_value, avg(value) AS avg_value, sum(value) AS sum_value
FROM points WHERE ts >= yiju_rollup_upto()
GROUP BY device_id, metric, channel, date_trunc('hour', ts, 'UTC');
