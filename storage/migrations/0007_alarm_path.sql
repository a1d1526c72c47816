-- Issue 9 (no alarm may be missed): registry change notifications, dead letters that know whose they
-- are, and the rule-state form with sequence epochs.

-- ---------------------------------------------------------------------------------------------
-- Registry changes are announced on the channel `yiju_registry` in the writing transaction (delivered
-- at commit), so ingest's registry cache learns of a device before the device can have been told it
-- exists. Payload: `d:<uid>,<uid>,…` for the devices whose ingest-relevant columns changed, or `*`
-- (reload everything) for a community change or a change too large for one notification (8000 bytes).
-- Triggers, not application code: every path that writes devices (API, CSV import, CLI, plain SQL)
-- is covered.

CREATE FUNCTION yiju_notify_registry(uids text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF uids IS NULL OR uids = '' THEN
        RETURN;
    END IF;
    IF length(uids) > 7900 THEN
        PERFORM pg_notify('yiju_registry', '*');
    ELSE
        PERFORM pg_notify('yiju_registry', 'd:' || uids);
    END IF;
END;
$$;

CREATE FUNCTION yiju_devices_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM yiju_notify_registry((SELECT string_agg(uid, ',') FROM new_rows));
    RETURN NULL;
END;
$$;

-- Transition tables have no statistics: without this the planner may join old and new rows by nested
-- loop, quadratic in the rows of the statement (seconds for a 7,000-device re-import).
CREATE FUNCTION yiju_devices_updated() RETURNS trigger LANGUAGE plpgsql SET enable_nestloop = off AS $$
BEGIN
    -- only what ingest caches (uid, community, family, enabled): a credentials or metadata update
    -- needs no reload
    PERFORM yiju_notify_registry((
        SELECT string_agg(DISTINCT u, ',')
        FROM new_rows n JOIN old_rows o ON o.id = n.id,
             LATERAL (VALUES (n.uid), (o.uid)) AS changed (u)
        WHERE (n.uid, n.community_id, n.family, n.enabled)
              IS DISTINCT FROM (o.uid, o.community_id, o.family, o.enabled)
    ));
    RETURN NULL;
END;
$$;

CREATE FUNCTION yiju_devices_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM yiju_notify_registry((SELECT string_agg(uid, ',') FROM old_rows));
    RETURN NULL;
END;
$$;

CREATE FUNCTION yiju_communities_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('yiju_registry', '*');
    RETURN NULL;
END;
$$;

-- transition tables allow one event per trigger
CREATE TRIGGER devices_notify_insert AFTER INSERT ON devices
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION yiju_devices_inserted();
CREATE TRIGGER devices_notify_update AFTER UPDATE ON devices
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION yiju_devices_updated();
CREATE TRIGGER devices_notify_delete AFTER DELETE ON devices
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION yiju_devices_deleted();
CREATE TRIGGER communities_notify AFTER INSERT OR UPDATE OF code OR DELETE ON communities
    FOR EACH STATEMENT EXECUTE FUNCTION yiju_communities_changed();

-- ---------------------------------------------------------------------------------------------
-- Dead letters carry the community and device they concern (resolved by ingest when it writes them),
-- so that `GET /api/v1/dead-letters` is scoped like every other read. No foreign keys on purpose: a
-- refused message must never fail its batch (and stall acknowledgements) because a registry row went
-- away in between; ids are never reused.

ALTER TABLE dead_letters ADD COLUMN community_id bigint, ADD COLUMN device_id integer;

UPDATE dead_letters dl SET device_id = d.id, community_id = d.community_id
FROM devices d WHERE d.uid = dl.device_uid;
-- the rest: the community the topic names ({prefix}/v1/{community}/…), when it is registered
UPDATE dead_letters dl SET community_id = c.id
FROM communities c WHERE dl.community_id IS NULL AND c.code = split_part(dl.topic, '/', 3);

CREATE INDEX dead_letters_community ON dead_letters (community_id, id DESC);
CREATE INDEX dead_letters_device_uid ON dead_letters (device_uid, id DESC);

-- ---------------------------------------------------------------------------------------------
-- Rule state, form 2 (alerts/core/model.py `DeviceState`): duplicate detection by sequence epochs.
-- Form 1 kept the highest seq (`s`) and a 64-bit mask (`k`) only; they become the current epoch
-- `e` = [highest seq, mask, newest device time, start time, …], with the device's newest time (`t`)
-- standing in for the epoch's and 0 for its unknown start.

UPDATE rule_state
SET state = (state - 's' - 'k') || jsonb_build_object(
    'v', 2,
    'e', jsonb_build_array(state -> 's', COALESCE(state -> 'k', '0'), COALESCE(state -> 't', '0'), 0))
WHERE NOT state ? 'v' AND (state ->> 's')::numeric >= 0;
UPDATE rule_state SET state = (state - 's' - 'k') || '{"v": 2}'::jsonb WHERE NOT state ? 'v';
