-- TimescaleDB for real operations (issue 14): Yiju's own runs of failing policy jobs, the rollup
-- ranges that late data made stale, and a daily pre-aggregate of compliance findings.

-- Every time Yiju's upkeep ran a TimescaleDB policy job itself because the scheduler's runs failed
-- (storage/tsdb.py). `CALL run_job` leaves TimescaleDB's job_stats untouched, so this is the record.
CREATE TABLE tsdb_job_runs (
    id           bigserial PRIMARY KEY,
    job_id       integer NOT NULL,
    proc_name    text NOT NULL,
    target       text NOT NULL,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz NOT NULL,
    ok           boolean NOT NULL,
    error        text
);
CREATE INDEX tsdb_job_runs_job ON tsdb_job_runs (job_id, finished_at DESC);

-- Hour ranges of points_hourly to recompute because points older than the rollup's recent window
-- were stored (a device flushing an outage buffer, a backfill). Written in the same transaction as
-- the points, so a crash between the write and the refresh loses nothing (storage/timeseries.py).
CREATE TABLE rollup_pending (
    id         bigserial PRIMARY KEY,
    lo         timestamptz NOT NULL,
    hi         timestamptz NOT NULL,
    queued_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (lo < hi)
);

-- Compliance findings counted per device, check and UTC day, kept by a statement trigger in the same
-- transaction as the findings. The 30-day report reads whole days here and only the partial days at
-- the window's edges from compliance_findings (storage/findings.py), so it stays exact.
CREATE TABLE compliance_daily (
    community_id      bigint NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    day               timestamptz NOT NULL,   -- UTC midnight
    check_name        text NOT NULL,
    device_id         integer NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    total             integer NOT NULL,
    compliant         integer NOT NULL,
    worst_measured_s  double precision,
    failing_channels  smallint[] NOT NULL DEFAULT '{}',  -- channels (> 0) with a non-compliant finding
    PRIMARY KEY (community_id, day, check_name, device_id)
);

-- the union of smallint arrays (failing channels over several days); sorted and deduplicated by the reader
CREATE AGGREGATE yiju_smallint_array_union(smallint[]) (SFUNC = array_cat, STYPE = smallint[], INITCOND = '{}');

CREATE FUNCTION yiju_failing_channels(a smallint[]) RETURNS smallint[] LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(array_agg(DISTINCT c ORDER BY c), '{}') FROM unnest(a) c
$$;

CREATE FUNCTION yiju_compliance_daily_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO compliance_daily AS d
        (community_id, day, check_name, device_id, total, compliant, worst_measured_s, failing_channels)
    SELECT community_id, date_trunc('day', observed_at, 'UTC'), check_name, device_id,
           count(*), count(*) FILTER (WHERE compliant), max(measured_s),
           coalesce(array_agg(DISTINCT channel ORDER BY channel) FILTER (WHERE NOT compliant AND channel > 0),
                    '{}')
    FROM new_rows
    GROUP BY 1, 2, 3, 4
    ON CONFLICT (community_id, day, check_name, device_id) DO UPDATE
        SET total = d.total + excluded.total,
            compliant = d.compliant + excluded.compliant,
            worst_measured_s = greatest(d.worst_measured_s, excluded.worst_measured_s),
            failing_channels = yiju_failing_channels(d.failing_channels || excluded.failing_channels);
    RETURN NULL;
END
$$;

-- Findings are never updated or deleted by Yiju (only cascaded away with their device); should one
-- be, its day is recounted from the findings, so the pre-aggregate cannot drift.
CREATE FUNCTION yiju_compliance_daily_recount() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    CREATE TEMP TABLE IF NOT EXISTS _yiju_recount_days
        (community_id bigint, day timestamptz, check_name text, device_id integer) ON COMMIT DROP;
    INSERT INTO _yiju_recount_days
    SELECT DISTINCT community_id, date_trunc('day', observed_at, 'UTC'), check_name, device_id FROM old_rows;
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO _yiju_recount_days
        SELECT DISTINCT community_id, date_trunc('day', observed_at, 'UTC'), check_name, device_id
        FROM new_rows;
    END IF;
    DELETE FROM compliance_daily d USING _yiju_recount_days r
    WHERE d.community_id = r.community_id AND d.day = r.day AND d.check_name = r.check_name
      AND d.device_id = r.device_id;
    INSERT INTO compliance_daily
        (community_id, day, check_name, device_id, total, compliant, worst_measured_s, failing_channels)
    SELECT f.community_id, r.day, f.check_name, f.device_id,
           count(*), count(*) FILTER (WHERE f.compliant), max(f.measured_s),
           coalesce(array_agg(DISTINCT f.channel ORDER BY f.channel)
                    FILTER (WHERE NOT f.compliant AND f.channel > 0), '{}')
    FROM (SELECT DISTINCT * FROM _yiju_recount_days) r JOIN compliance_findings f
      ON f.community_id = r.community_id AND f.check_name = r.check_name AND f.device_id = r.device_id
     AND f.observed_at >= r.day AND f.observed_at < r.day + interval '1 day'
    GROUP BY 1, 2, 3, 4;
    TRUNCATE _yiju_recount_days;
    RETURN NULL;
END
$$;

CREATE TRIGGER compliance_daily_insert AFTER INSERT ON compliance_findings
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION yiju_compliance_daily_add();
CREATE TRIGGER compliance_daily_delete AFTER DELETE ON compliance_findings
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION yiju_compliance_daily_recount();
CREATE TRIGGER compliance_daily_update AFTER UPDATE ON compliance_findings
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION yiju_compliance_daily_recount();

INSERT INTO compliance_daily
    (community_id, day, check_name, device_id, total, compliant, worst_measured_s, failing_channels)
SELECT community_id, date_trunc('day', observed_at, 'UTC'), check_name, device_id,
       count(*), count(*) FILTER (WHERE compliant), max(measured_s),
       coalesce(array_agg(DISTINCT channel ORDER BY channel) FILTER (WHERE NOT compliant AND channel > 0), '{}')
FROM compliance_findings
GROUP BY 1, 2, 3, 4;
