-- Coarser levels above compliance_daily (issue 14 item 7): the same counts per device and check over
-- aligned spans of 2, 4, 8, 16, 32 and 64 UTC days. A span of L days starts on a day whose number
-- since 1970-01-01 is a multiple of L, so any run of whole days splits into at most two spans of each
-- length (storage/findings.py `_spans`): a 30-day report reads ~6 rows per device and check, not 29.
--
-- Invariants, and what enforces them:
-- - a span row equals the sum of the compliance_daily rows inside it: the findings' insert trigger
--   adds every new finding to its day and to each of its six spans in the same statement
--   (yiju_compliance_daily_add, replaced below); an update or delete of findings (a retention purge,
--   a device removed) recounts the days concerned from the findings and then their spans from the
--   days (yiju_compliance_daily_recount, replaced below);
-- - late data needs nothing special: a finding for an old day is added to that day and its spans
--   like any other (tests/test_compliance_summary.py).
CREATE TABLE compliance_span (
    community_id      bigint NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    span_days         smallint NOT NULL CHECK (span_days IN (2, 4, 8, 16, 32, 64)),
    day               timestamptz NOT NULL,   -- UTC midnight of the span's first day
    check_name        text NOT NULL,
    device_id         integer NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    total             integer NOT NULL,
    compliant         integer NOT NULL,
    worst_measured_s  double precision,
    failing_channels  smallint[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (community_id, span_days, day, check_name, device_id)
);
CREATE INDEX compliance_span_device ON compliance_span (device_id);

-- the first day of the span of `span_days` days holding `at` (days numbered from 1970-01-01 UTC)
CREATE FUNCTION yiju_span_start(at timestamptz, span_days integer) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT 'epoch'::timestamptz
           + make_interval(days => (floor(extract(epoch FROM at) / 86400 / span_days) * span_days)::integer)
$$;

CREATE OR REPLACE FUNCTION yiju_compliance_daily_add() RETURNS trigger LANGUAGE plpgsql AS $$
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
    INSERT INTO compliance_span AS s
        (community_id, span_days, day, check_name, device_id, total, compliant, worst_measured_s,
         failing_channels)
    SELECT community_id, l.span_days, yiju_span_start(observed_at, l.span_days), check_name, device_id,
           count(*), count(*) FILTER (WHERE compliant), max(measured_s),
           coalesce(array_agg(DISTINCT channel ORDER BY channel) FILTER (WHERE NOT compliant AND channel > 0),
                    '{}')
    FROM new_rows, unnest('{2,4,8,16,32,64}'::smallint[]) AS l(span_days)
    GROUP BY 1, 2, 3, 4, 5
    ON CONFLICT (community_id, span_days, day, check_name, device_id) DO UPDATE
        SET total = s.total + excluded.total,
            compliant = s.compliant + excluded.compliant,
            worst_measured_s = greatest(s.worst_measured_s, excluded.worst_measured_s),
            failing_channels = yiju_failing_channels(s.failing_channels || excluded.failing_channels);
    RETURN NULL;
END
$$;

-- Findings are never updated or deleted by Yiju's own writers; a purge, an edit by hand or a device
-- removed recounts the days concerned from the findings, then their spans from those days, so
-- neither level can drift.
CREATE OR REPLACE FUNCTION yiju_compliance_daily_recount() RETURNS trigger LANGUAGE plpgsql AS $$
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
    -- the spans holding those days, recounted from the (now exact) days
    CREATE TEMP TABLE IF NOT EXISTS _yiju_recount_spans
        (community_id bigint, span_days smallint, day timestamptz, check_name text, device_id integer)
        ON COMMIT DROP;
    INSERT INTO _yiju_recount_spans
    SELECT DISTINCT r.community_id, l.span_days, yiju_span_start(r.day, l.span_days), r.check_name, r.device_id
    FROM _yiju_recount_days r, unnest('{2,4,8,16,32,64}'::smallint[]) AS l(span_days);
    DELETE FROM compliance_span s USING _yiju_recount_spans r
    WHERE s.community_id = r.community_id AND s.span_days = r.span_days AND s.day = r.day
      AND s.check_name = r.check_name AND s.device_id = r.device_id;
    INSERT INTO compliance_span
        (community_id, span_days, day, check_name, device_id, total, compliant, worst_measured_s,
         failing_channels)
    SELECT r.community_id, r.span_days, r.day, r.check_name, r.device_id,
           sum(d.total), sum(d.compliant), max(d.worst_measured_s),
           yiju_failing_channels(yiju_smallint_array_union(d.failing_channels))
    FROM _yiju_recount_spans r JOIN compliance_daily d
      ON d.community_id = r.community_id AND d.check_name = r.check_name AND d.device_id = r.device_id
     AND d.day >= r.day AND d.day < r.day + make_interval(days => r.span_days)
    GROUP BY 1, 2, 3, 4, 5;
    TRUNCATE _yiju_recount_days;
    TRUNCATE _yiju_recount_spans;
    RETURN NULL;
END
$$;

INSERT INTO compliance_span
    (community_id, span_days, day, check_name, device_id, total, compliant, worst_measured_s,
     failing_channels)
SELECT d.community_id, l.span_days, yiju_span_start(d.day, l.span_days), d.check_name, d.device_id,
       sum(d.total), sum(d.compliant), max(d.worst_measured_s),
       yiju_failing_channels(yiju_smallint_array_union(d.failing_channels))
FROM compliance_daily d, unnest('{2,4,8,16,32,64}'::smallint[]) AS l(span_days)
GROUP BY 1, 2, 3, 4, 5;
