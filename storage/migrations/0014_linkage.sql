-- Emergency linkage with call systems (domain.md §6): the people and endpoints to notify, their
-- on-duty schedules, escalation chains, the policies that pick a chain for an alarm, incidents (the
-- chain frozen at start), the delivery outbox and the audit trail of every attempt.
-- SQL and invariants: storage/escalation.py.

CREATE TABLE linkage_people (
    id            bigserial PRIMARY KEY,
    community_id  bigint NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    phone         text NOT NULL CHECK (phone ~ '^\+?[0-9]{3,20}$'),
    -- the duty group a chain step can target ("on duty in group X"), e.g. manager, director
    duty_group    text NOT NULL DEFAULT 'manager' CHECK (duty_group ~ '^[a-z0-9_]{1,32}$'),
    enabled       boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX linkage_people_community ON linkage_people (community_id, duty_group);

-- Weekly on-duty shifts in the community's time zone; end <= start wraps over midnight.
CREATE TABLE linkage_schedules (
    id          bigserial PRIMARY KEY,
    person_id   bigint NOT NULL REFERENCES linkage_people (id) ON DELETE CASCADE,
    weekdays    smallint[] NOT NULL CHECK (weekdays <@ ARRAY[1,2,3,4,5,6,7]::smallint[]
                                           AND cardinality(weekdays) >= 1),   -- ISO: 1 = Monday
    start_min   integer NOT NULL CHECK (start_min BETWEEN 0 AND 1439),
    end_min     integer NOT NULL CHECK (end_min BETWEEN 0 AND 1440)
);
CREATE INDEX linkage_schedules_person ON linkage_schedules (person_id);

-- External endpoints: a third-party webhook (96333 platform, 119 relay) or a fire remote-monitoring
-- centre (GB/T 26875.3). `config` holds the address; `secret` the signing key (never returned by the API).
CREATE TABLE linkage_endpoints (
    id            bigserial PRIMARY KEY,
    community_id  bigint NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    kind          text NOT NULL CHECK (kind IN ('webhook', 'gbt26875')),
    config        jsonb NOT NULL DEFAULT '{}'::jsonb,
    secret        text NOT NULL DEFAULT '',
    enabled       boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE linkage_chains (
    id            bigserial PRIMARY KEY,
    community_id  bigint NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    definition    jsonb NOT NULL,           -- alerts.escalation.core.Chain as JSON (validated by the API)
    version       integer NOT NULL DEFAULT 1,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (community_id, name)
);

CREATE TABLE linkage_policies (
    id            bigserial PRIMARY KEY,
    community_id  bigint NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    alarm_types   text[] NOT NULL DEFAULT '{}',   -- empty: every type
    severities    text[] NOT NULL DEFAULT '{}',   -- empty: every severity
    chain_id      bigint NOT NULL REFERENCES linkage_chains (id) ON DELETE RESTRICT,
    -- quiet hours apply to non-critical alarms only (critical types always escalate)
    quiet_start_min integer CHECK (quiet_start_min BETWEEN 0 AND 1439),
    quiet_end_min   integer CHECK (quiet_end_min BETWEEN 0 AND 1440),
    priority      integer NOT NULL DEFAULT 100,   -- lower wins when several policies match
    enabled       boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX linkage_policies_community ON linkage_policies (community_id, priority);

CREATE TABLE linkage_incidents (
    id              bigserial PRIMARY KEY,
    community_id    bigint NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    alarm_id        bigint REFERENCES alarms (id) ON DELETE SET NULL,   -- NULL for a drill
    group_key       text,                    -- linked group, e.g. fire:building:12
    drill           boolean NOT NULL DEFAULT false,
    policy_id       bigint REFERENCES linkage_policies (id) ON DELETE SET NULL,
    chain_id        bigint REFERENCES linkage_chains (id) ON DELETE SET NULL,
    chain           jsonb NOT NULL,          -- the chain frozen when the incident started
    alarm_type      text NOT NULL,
    severity        text NOT NULL,
    summary         text NOT NULL DEFAULT '',
    context         jsonb NOT NULL DEFAULT '{}'::jsonb,   -- community, building, location, device
    state           text NOT NULL DEFAULT 'open' CHECK (state IN (
                        'open', 'acknowledged', 'cleared', 'exhausted', 'cancelled')),
    loop            integer NOT NULL DEFAULT 0,     -- the loop of the next step
    next_step       integer NOT NULL DEFAULT 0,     -- index of the next step to start
    next_step_at    timestamptz,                    -- NULL: no step left
    alarm_at        timestamptz NOT NULL,           -- when the alarm was committed (latency metric)
    started_at      timestamptz NOT NULL DEFAULT now(),
    first_attempt_at timestamptz,
    ended_at        timestamptz,
    ended_by        text,
    CHECK ((state = 'open') = (ended_at IS NULL))
);
-- One incident per alarm, ever: an 'updated' transition months later never starts a second one
-- (Grafana OnCall #3111). Drills have no alarm.
CREATE UNIQUE INDEX linkage_incidents_one_per_alarm ON linkage_incidents (alarm_id) WHERE alarm_id IS NOT NULL;
-- At most one open incident per linked group: the fire and the linkage failures it causes are one.
CREATE UNIQUE INDEX linkage_incidents_open_group ON linkage_incidents (group_key)
    WHERE state = 'open' AND group_key IS NOT NULL;
CREATE INDEX linkage_incidents_due ON linkage_incidents (next_step_at) WHERE state = 'open';
CREATE INDEX linkage_incidents_community ON linkage_incidents (community_id, started_at DESC);

-- Further alarms of a linked group (e.g. linkage_failed of the fire's doors).
CREATE TABLE linkage_incident_alarms (
    incident_id  bigint NOT NULL REFERENCES linkage_incidents (id) ON DELETE CASCADE,
    alarm_id     bigint NOT NULL UNIQUE REFERENCES alarms (id) ON DELETE CASCADE,
    PRIMARY KEY (incident_id, alarm_id)
);

-- The delivery outbox: one row per (incident, loop, step, target, channel). The idempotency key is
-- unique and is sent to the provider, so neither a second worker nor a restart sends a row twice.
CREATE TABLE linkage_outbox (
    id            bigserial PRIMARY KEY,
    incident_id   bigint NOT NULL REFERENCES linkage_incidents (id) ON DELETE CASCADE,
    idem_key      text NOT NULL UNIQUE,
    loop          integer NOT NULL,
    step          integer NOT NULL,
    target        text NOT NULL,            -- person:<id> | endpoint:<id> | console
    target_name   text NOT NULL DEFAULT '',
    channel       text NOT NULL CHECK (channel IN ('console', 'sip', 'sms', 'voice', 'webhook', 'gbt26875')),
    address       text NOT NULL DEFAULT '', -- phone number, URL, host:port
    status        text NOT NULL DEFAULT 'pending' CHECK (status IN (
                      'pending', 'sending', 'delivered', 'answered', 'acknowledged', 'busy',
                      'no_answer', 'failed', 'interrupted', 'cancelled')),
    attempts      integer NOT NULL DEFAULT 0,
    next_at       timestamptz NOT NULL DEFAULT now(),
    claimed_at    timestamptz,
    claimed_by    text,
    provider_ref  text,
    outcome       text,
    detail        jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz
);
CREATE INDEX linkage_outbox_due ON linkage_outbox (next_at) WHERE status = 'pending';
CREATE INDEX linkage_outbox_sending ON linkage_outbox (claimed_at) WHERE status = 'sending';
CREATE INDEX linkage_outbox_incident ON linkage_outbox (incident_id, id);
CREATE INDEX linkage_outbox_address ON linkage_outbox (address, claimed_at) WHERE claimed_at IS NOT NULL;

-- Append-only trail of everything that happened to an incident: shown by the API and the console.
CREATE TABLE linkage_audit (
    id           bigserial PRIMARY KEY,
    incident_id  bigint NOT NULL REFERENCES linkage_incidents (id) ON DELETE CASCADE,
    outbox_id    bigint REFERENCES linkage_outbox (id) ON DELETE SET NULL,
    at           timestamptz NOT NULL DEFAULT now(),
    kind         text NOT NULL CHECK (kind IN (
                     'started', 'step', 'attempt', 'outcome', 'retry', 'rate_limited', 'dtmf',
                     'acknowledged', 'cleared', 'cancelled', 'exhausted', 'linked', 'skipped')),
    actor        text NOT NULL DEFAULT 'linkage',
    detail       jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX linkage_audit_incident ON linkage_audit (incident_id, id);

-- How far the escalation worker has read alarm_transitions (it resumes after this id).
CREATE TABLE linkage_cursor (
    name               text PRIMARY KEY,
    last_transition_id bigint NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
-- Alarms raised before linkage existed never start an incident (no re-page of old alarms).
INSERT INTO linkage_cursor (name, last_transition_id)
SELECT 'escalation', COALESCE(max(id), 0) FROM alarm_transitions;
