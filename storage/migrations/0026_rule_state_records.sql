-- Rule state, form 4 (alerts/core/model.py `DeviceState`, alerts/core/records.py): the records that
-- form 3 still kept in the marks (`m`) as positional lists get named fields and a place of their own.
-- `m` keeps the scalars only: timers "t:<name>", flap-held clears "q:<type>", reported conditions
-- "ev:<kind>", satisfied linkage actions "sat:<action>".
--   form 3 mark                                      form 4
--   "co" = offset                                    clock_offset_s (left out when 0)
--   "ck" = [start, least, n]                         clock_window {start, least, n}
--   "f:<type>" = [count, since]                      flaps {<type>: {n, since}}
--   "h:<type>" = [good, said]                        holds {<type>: {good, said}}
--   "c:<name>" = [count, since]                      counts {<name>: {n, since}}
--   "rf:<key>" = [ts, alarm]                         faults {<key>: {at, alarm, reported: true}}
--   "sf:<key>" = [ts, decided, alarm(, raised)]      faults {<key>: {at, alarm, decided?, raised?}}
--   "ex:<action>" = reason                           exempt {<action>: reason}
--   charging posts: "ps:<p>"/"np:<p>" = [ts, reason], "fw:<p>" = [since, session_s], "on", "p"
--                                                    charger {protective, other, floats, on, protection}
--   CCTV: "c<n>" = [flags, stopped, verdict, evaluated, earliest], "g<n>" = [[end, s]…], "cl", "ro",
--         "ow", "ca:<alarm>"                         cctv {channels {<n>: {…, gaps}}, last_report,
--                                                          offline, overwrite, alarm_channels}
--   elevators: "mode", "r" = [t0, step], "rd", "tre", "trt"
--                                                    elevator {mode, rescue {t0, step}, rescued_at,
--                                                              trapped_event, trapped_telemetry}
--   smoke alarms: "bs" = [start, announced or -1, reminded, too long], "bc"
--                                                    smoke {silence {start, announced_s?, reminded?,
--                                                           too_long?}, check_overdue}
--   gas alarms: "ge" (or "ev:gas"), "gs", "gr" = [lel, co or -1], "valve", "gc"
--                                                    gas {event_level, state_level, reading {lel_pct,
--                                                         co_ppm?}, valve, close_due}
-- Fields at their default, and empty maps and records, are left out, as `DeviceState.to_json` writes
-- them; `DeviceState.from_json` still reads form 3, should a row of it be written by an engine of the
-- previous version after this ran.

CREATE FUNCTION pg_temp.yiju_truthy(v jsonb) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT COALESCE(v = 'true'::jsonb OR (jsonb_typeof(v) = 'number' AND v::numeric <> 0), false)
$$;

CREATE FUNCTION pg_temp.yiju_rule_state_form4(s jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
WITH m AS (
    SELECT e.key, e.value, (
        e.key ~ '^(f|h|c|rf|sf|ex):.' OR e.key IN ('co', 'ck')
        OR e.key ~ '^(ps|np|fw):.' OR e.key IN ('on', 'p')                                 -- charger
        OR e.key ~ '^[cg][0-9]+$' OR e.key ~ '^ca:' OR e.key IN ('cl', 'ro', 'ow')          -- cctv
        OR e.key IN ('mode', 'r', 'rd', 'tre', 'trt')                                       -- elevator
        OR e.key IN ('bs', 'bc')                                                            -- smoke
        OR e.key IN ('ge', 'ev:gas', 'gs', 'gr', 'valve', 'gc')                             -- gas
    ) AS claimed,
    -- the value as a number, and an array's length (NULL for other kinds: no cast can fail)
    CASE WHEN jsonb_typeof(e.value) = 'number' THEN e.value::numeric END AS num,
    CASE WHEN jsonb_typeof(e.value) = 'array' THEN jsonb_array_length(e.value) END AS len
    FROM jsonb_each(COALESCE(s -> 'm', '{}'::jsonb)) AS e (key, value)
),
channels AS (
    SELECT substr(key, 2) AS n,
           COALESCE(jsonb_agg(CASE WHEN key LIKE 'c%' THEN jsonb_strip_nulls(jsonb_build_object(
               'online', CASE WHEN (value ->> 0)::int & 1 = 0 THEN false END,
               'recording', CASE WHEN (value ->> 0)::int & 2 = 0 THEN false END,
               'stopped_since', CASE WHEN (value -> 1)::numeric <> 0 THEN value -> 1 END,
               'verdict', CASE WHEN (value -> 2)::numeric <> -1 THEN value -> 2 END,
               'evaluated_at', CASE WHEN (value -> 3)::numeric <> 0 THEN value -> 3 END,
               'earliest', CASE WHEN (value -> 4)::numeric <> 0 THEN value -> 4 END
           )) END) FILTER (WHERE key LIKE 'c%') -> 0, '{}'::jsonb)
           || COALESCE(jsonb_agg(jsonb_build_object('gaps', value))
                  FILTER (WHERE key LIKE 'g%' AND len > 0) -> 0, '{}'::jsonb) AS doc
    FROM m WHERE key ~ '^[cg][0-9]+$' AND len IS NOT NULL
    GROUP BY 1
),
parts AS (
    SELECT
        jsonb_object_agg(key, value) FILTER (
            WHERE NOT claimed AND jsonb_typeof(value) IN ('number', 'boolean')) AS marks,
        jsonb_agg(value) FILTER (WHERE key = 'co' AND num <> 0) -> 0 AS clock_offset_s,
        jsonb_agg(jsonb_build_object('start', value -> 0, 'least', value -> 1, 'n', value -> 2))
            FILTER (WHERE key = 'ck') -> 0 AS clock_window,
        jsonb_object_agg(substr(key, 3), jsonb_build_object('n', value -> 0, 'since', value -> 1))
            FILTER (WHERE key ~ '^f:.') AS flaps,
        jsonb_object_agg(substr(key, 3), jsonb_build_object('good', value -> 0, 'said', value -> 1))
            FILTER (WHERE key ~ '^h:.') AS holds,
        jsonb_object_agg(substr(key, 3), jsonb_build_object('n', value -> 0, 'since', value -> 1))
            FILTER (WHERE key ~ '^c:.') AS counts,
        jsonb_object_agg(substr(key, 4), CASE WHEN key LIKE 'rf:%'
            THEN jsonb_build_object('at', value -> 0, 'alarm', value -> 1, 'reported', true)
            ELSE jsonb_build_object('at', value -> 0, 'alarm', value -> 2)
                 || CASE WHEN pg_temp.yiju_truthy(value -> 1) THEN '{"decided": true}' ELSE '{}' END::jsonb
                 || CASE WHEN len > 3 THEN '{"raised": true}' ELSE '{}' END::jsonb
            END) FILTER (WHERE key ~ '^(rf|sf):.') AS faults,
        jsonb_object_agg(substr(key, 4), value) FILTER (WHERE key ~ '^ex:.') AS exempt,
        -- charging posts
        jsonb_object_agg(substr(key, 4), jsonb_build_object('at', value -> 0, 'reason', value -> 1))
            FILTER (WHERE key ~ '^ps:.') AS protective,
        jsonb_object_agg(substr(key, 4), jsonb_build_object('at', value -> 0, 'reason', value -> 1))
            FILTER (WHERE key ~ '^np:.') AS other,
        jsonb_object_agg(substr(key, 4), jsonb_build_object('since', value -> 0, 'session_s', value -> 1))
            FILTER (WHERE key ~ '^fw:.') AS floats,
        jsonb_agg(value) FILTER (WHERE key = 'on' AND len > 0) -> 0 AS on_ports,
        jsonb_agg(CASE WHEN num IS NOT NULL THEN (  -- bit flags of still earlier versions
            SELECT COALESCE(jsonb_agg(b.issue ORDER BY b.issue), '[]'::jsonb)
            FROM (VALUES (1, 'full_auto_stop_disabled'), (2, 'over_temp_cutoff_disabled')) AS b (flag, issue)
            WHERE num::int & b.flag <> 0) ELSE value END) FILTER (WHERE key = 'p') -> 0 AS protection,
        -- CCTV recorders
        (SELECT jsonb_object_agg(n, doc) FROM channels) AS cctv_channels,
        jsonb_agg(value) FILTER (WHERE key = 'cl') -> 0 AS last_report,
        bool_or(pg_temp.yiju_truthy(value)) FILTER (WHERE key = 'ro') AS offline,
        jsonb_agg(to_jsonb(pg_temp.yiju_truthy(value))) FILTER (WHERE key = 'ow') -> 0 AS overwrite,
        jsonb_object_agg(substr(key, 4), value) FILTER (WHERE key ~ '^ca:') AS alarm_channels,
        -- elevators
        jsonb_agg(value) FILTER (WHERE key = 'mode') -> 0 AS mode,
        jsonb_agg(jsonb_build_object('t0', value -> 0, 'step', value -> 1)) FILTER (WHERE key = 'r') -> 0 AS rescue,
        jsonb_agg(value) FILTER (WHERE key = 'rd') -> 0 AS rescued_at,
        bool_or(pg_temp.yiju_truthy(value)) FILTER (WHERE key = 'tre') AS trapped_event,
        bool_or(pg_temp.yiju_truthy(value)) FILTER (WHERE key = 'trt') AS trapped_telemetry,
        -- smoke alarms
        jsonb_agg(jsonb_build_object('start', value -> 0)
            || CASE WHEN (value -> 1)::numeric >= 0 THEN jsonb_build_object('announced_s', value -> 1)
                    ELSE '{}' END
            || CASE WHEN pg_temp.yiju_truthy(value -> 2) THEN '{"reminded": true}' ELSE '{}' END::jsonb
            || CASE WHEN pg_temp.yiju_truthy(value -> 3) THEN '{"too_long": true}' ELSE '{}' END::jsonb)
            FILTER (WHERE key = 'bs') -> 0 AS silence,
        bool_or(pg_temp.yiju_truthy(value)) FILTER (WHERE key = 'bc') AS check_overdue,
        -- gas alarms
        jsonb_agg(value) FILTER (WHERE key IN ('ge', 'ev:gas') AND num <> 0) -> 0 AS event_level,
        jsonb_agg(value) FILTER (WHERE key = 'gs' AND num <> 0) -> 0 AS state_level,
        jsonb_agg(jsonb_build_object('lel_pct', value -> 0)
            || CASE WHEN (value -> 1)::numeric >= 0 THEN jsonb_build_object('co_ppm', value -> 1)
                    ELSE '{}' END) FILTER (WHERE key = 'gr') -> 0 AS reading,
        jsonb_agg(value) FILTER (WHERE key = 'valve' AND value <> '"none"') -> 0 AS valve,
        jsonb_agg(value) FILTER (WHERE key = 'gc') -> 0 AS close_due
    FROM m
)
SELECT (s - 'm' - 'v')
    || jsonb_build_object('v', 4, 'm', COALESCE(p.marks, '{}'::jsonb))
    || jsonb_strip_nulls(jsonb_build_object(
        'clock_offset_s', p.clock_offset_s,
        'clock_window', p.clock_window,
        'flaps', p.flaps,
        'faults', p.faults,
        'holds', p.holds,
        'counts', p.counts,
        'exempt', p.exempt,
        'charger', NULLIF(jsonb_strip_nulls(jsonb_build_object(
            'protective', p.protective, 'other', p.other, 'floats', p.floats, 'on', p.on_ports,
            'protection', p.protection)), '{}'),
        'cctv', NULLIF(jsonb_strip_nulls(jsonb_build_object(
            'channels', p.cctv_channels, 'last_report', p.last_report,
            'offline', CASE WHEN p.offline THEN true END, 'overwrite', p.overwrite,
            'alarm_channels', p.alarm_channels)), '{}'),
        'elevator', NULLIF(jsonb_strip_nulls(jsonb_build_object(
            'mode', p.mode, 'rescue', p.rescue, 'rescued_at', p.rescued_at,
            'trapped_event', CASE WHEN p.trapped_event THEN true END,
            'trapped_telemetry', CASE WHEN p.trapped_telemetry THEN true END)), '{}'),
        'smoke', NULLIF(jsonb_strip_nulls(jsonb_build_object(
            'silence', p.silence, 'check_overdue', CASE WHEN p.check_overdue THEN true END)), '{}'),
        'gas', NULLIF(jsonb_strip_nulls(jsonb_build_object(
            'event_level', p.event_level, 'state_level', p.state_level, 'reading', p.reading,
            'valve', p.valve, 'close_due', p.close_due)), '{}')
    ))
FROM parts p
$$;

UPDATE rule_state SET state = pg_temp.yiju_rule_state_form4(state)
WHERE COALESCE((state ->> 'v')::int, 1) = 3;
