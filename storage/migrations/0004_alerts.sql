-- Alert engine: persisted rule state (timers, counters, open triggers) so a restart resumes them,
-- and idempotency keys for the engine's findings and commands (messages are delivered at least once).

CREATE TABLE rule_state (
    device_id   integer PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    state       jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE compliance_findings ADD COLUMN dedup_key text;
CREATE UNIQUE INDEX compliance_findings_dedup ON compliance_findings (device_id, dedup_key)
    WHERE dedup_key IS NOT NULL;
CREATE INDEX compliance_findings_window ON compliance_findings (community_id, observed_at);
