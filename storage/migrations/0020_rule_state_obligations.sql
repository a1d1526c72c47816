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
    || jsonb_build_object('v', 3, 'm', COALESCE(parts.m, '{}'::jsonb))
    || jsonb_strip_nulls(jsonb_build_object('cuts', parts.cuts, 'actions', parts.actions))
FROM rule_state s
CROSS JOIN LATERAL (
    SELECT
        jsonb_object_agg(e.key, e.value) FILTER (WHERE e.key NOT LIKE 'o:%' AND e.key NOT LIKE 'l:%') AS m,
        jsonb_object_agg(substr(e.key, 3), ob.doc) FILTER (WHERE e.key LIKE 'o:%') AS cuts,
        jsonb_object_agg(substr(e.key, 3), ob.doc) FILTER (WHERE e.key LIKE 'l:%') AS actions
    FROM jsonb_each(s.state -> 'm') AS e (key, value)
    CROSS JOIN LATERAL (
        SELECT CASE WHEN e.key LIKE 'o:%' OR e.key LIKE 'l:%' THEN jsonb_strip_nulls(jsonb_build_object(
            't0', e.value -> 0,
            'deadline', e.value -> 1,
            'stage', e.value -> 2,
            'ports', CASE WHEN e.key LIKE 'o:%' THEN (
                SELECT jsonb_agg(x.p ORDER BY x.i) FROM jsonb_array_elements(e.value) WITH ORDINALITY AS x (p, i)
                WHERE x.i > 3) END,
            'signals', CASE WHEN e.key LIKE 'l:%' THEN
                CASE WHEN jsonb_array_length(COALESCE(e.value -> 3, '[]')) > 0 THEN e.value -> 3 END END))
        END AS doc
    ) ob
) parts
WHERE s.device_id = r.device_id AND COALESCE((r.state ->> 'v')::int, 1) = 2;
