-- Rule state, form 3 (alerts/core/model.py `DeviceState`): obligations as typed records.
-- Form 2 kept them in the marks (`m`) as positional lists:
--   "o:<kind>:<port>" = [trigger ts, deadline ts, stage, port…]   (a charging post's auto-cutoff)
--   "l:<action>"      = [trigger ts, deadline ts, stage, [signal…]] (a linkage action owed)
-- Form 3 holds them beside the marks, by name: `cuts` {"<kind>:<port>": {t0, deadline, stage, ports}}
-- and `actions` {"<action>": {t0, deadline, stage, signals}}; empty lists and maps are left out, as
-- `DeviceState.to_json` writes them. `DeviceState.from_json` still reads form 2, should a row of it
-- be written by an engine of the previous version after this ran.

UPDATE rule_state r
SET state = (r.state - 'm' - 'v')
    || jsonb_build_object('v', 3, 'm', COALESCE(keep.m, '{}'::jsonb))
    || jsonb_strip_nulls(jsonb_build_object('cuts', cut.doc, 'actions', act.doc))
FROM rule_state s
CROSS JOIN LATERAL (
    SELECT jsonb_object_agg(key, value) AS m
    FROM jsonb_each(s.state -> 'm')
    WHERE key NOT LIKE 'o:%' AND key NOT LIKE 'l:%'
) keep
CROSS JOIN LATERAL (
    SELECT jsonb_object_agg(
        substr(key, 3),
        jsonb_strip_nulls(jsonb_build_object(
            't0', value -> 0,
            'deadline', value -> 1,
            'stage', value -> 2,
            'ports', (SELECT jsonb_agg(p ORDER BY i) FROM jsonb_array_elements(value) WITH ORDINALITY e (p, i)
                      WHERE i > 3)))) AS doc
    FROM jsonb_each(s.state -> 'm')
    WHERE key LIKE 'o:%'
) cut
CROSS JOIN LATERAL (
    SELECT jsonb_object_agg(
        substr(key, 3),
        jsonb_strip_nulls(jsonb_build_object(
            't0', value -> 0,
            'deadline', value -> 1,
            'stage', value -> 2,
            'signals', CASE WHEN jsonb_array_length(COALESCE(value -> 3, '[]')) > 0 THEN value -> 3 END)))
        AS doc
    FROM jsonb_each(s.state -> 'm')
    WHERE key LIKE 'l:%'
) act
WHERE s.device_id = r.device_id AND COALESCE((r.state ->> 'v')::int, 1) = 2;
