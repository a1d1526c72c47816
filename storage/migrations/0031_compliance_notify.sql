-- Every change to what a compliance summary reads is announced on `yiju_compliance` (payload: the
-- table), after its commit, to every API process: each keeps the summaries it answered for a few
-- seconds (api/compliance/router.py, the rule of api/kept.py) and drops them when it hears this. A
-- finding recorded, corrected or purged (compliance_findings), and the pre-aggregates the findings'
-- own triggers keep (compliance_daily, compliance_span: notified too, should anything write them
-- directly) then show on the next summary, as with a query per request.
-- Statement-level: one notification per statement (PostgreSQL folds equal ones in a transaction).
-- Not notified here: a device's uid or family (the registry's own `yiju_registry`, migration 0007).
CREATE FUNCTION notify_compliance() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('yiju_compliance', TG_TABLE_NAME);
    RETURN NULL;
END $$;

CREATE TRIGGER compliance_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON compliance_findings
    FOR EACH STATEMENT EXECUTE FUNCTION notify_compliance();
CREATE TRIGGER compliance_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON compliance_daily
    FOR EACH STATEMENT EXECUTE FUNCTION notify_compliance();
CREATE TRIGGER compliance_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON compliance_span
    FOR EACH STATEMENT EXECUTE FUNCTION notify_compliance();
