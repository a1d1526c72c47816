-- `yiju_compliance` (migration 0031) only when a statement changed rows. 0031 notified once per
-- statement, rows or not: a redelivered finding that the dedup index skips (0 rows) still sent three
-- notifications (the findings, and the empty statements of the pre-aggregates' own triggers), and
-- each drops every kept alarm page and compliance summary of every community in every API process.
-- Transition tables tell whether a statement touched a row; PostgreSQL allows them on one event per
-- trigger, hence a trigger per event (TRUNCATE has none: it always notifies).
DROP TRIGGER compliance_changed ON compliance_findings;
DROP TRIGGER compliance_changed ON compliance_daily;
DROP TRIGGER compliance_changed ON compliance_span;

CREATE FUNCTION notify_compliance_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM changed_rows) THEN
        PERFORM pg_notify('yiju_compliance', TG_TABLE_NAME);
    END IF;
    RETURN NULL;
END $$;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['compliance_findings', 'compliance_daily', 'compliance_span'] LOOP
        EXECUTE format('CREATE TRIGGER compliance_inserted AFTER INSERT ON %I REFERENCING NEW TABLE AS '
                       'changed_rows FOR EACH STATEMENT EXECUTE FUNCTION notify_compliance_rows()', t);
        EXECUTE format('CREATE TRIGGER compliance_updated AFTER UPDATE ON %I REFERENCING NEW TABLE AS '
                       'changed_rows FOR EACH STATEMENT EXECUTE FUNCTION notify_compliance_rows()', t);
        EXECUTE format('CREATE TRIGGER compliance_deleted AFTER DELETE ON %I REFERENCING OLD TABLE AS '
                       'changed_rows FOR EACH STATEMENT EXECUTE FUNCTION notify_compliance_rows()', t);
        EXECUTE format('CREATE TRIGGER compliance_truncated AFTER TRUNCATE ON %I '
                       'FOR EACH STATEMENT EXECUTE FUNCTION notify_compliance()', t);
    END LOOP;
END
$$;
