-- What PostgreSQL does per ingested message beyond a plain store of the row (issue 18, measured with
-- `bench/ingest/run.py --compare`, bench/RESULTS.md "PostgreSQL CPU per message at saturation").
--
-- 1. device_presence: ingest upserts every device seen in a presence flush (every 2 s, about 0.2 rows
--    per message at saturation). Each upsert moves last_seen, which the partial index
--    device_presence_online_last_seen covered, so no update could be HOT: every one wrote a new heap
--    tuple on another page plus an entry in both indexes (18 µs per row; the table also grew by its
--    size every ~15 flushes until vacuum). Without the index, and with room on each page for the new
--    version (fillfactor 50: the table is one row per device, ~1 MB per 6,500), the updates are HOT
--    (10 µs per row, the table stays its size). The index served only the offline sweep (every
--    presence_sweep_s, 15 s): it now reads the table sequentially, one row per device, far less work
--    than the index cost the upserts in that time. (Existing pages stay full until rewritten: a
--    device's first update after this moves its row to a page with room, the later ones are HOT.)
ALTER TABLE device_presence SET (fillfactor = 50);
DROP INDEX device_presence_online_last_seen;

-- 2. Compression of wide values: a row over ~2 kB has its widest values compressed before it is
--    stored (the chargers' 60–89-point messages: the JSON body and the metric names, ~3 % of the rows
--    in the bench load). pglz, PostgreSQL's default, is ~4 % of the ingest backend's CPU; lz4 compresses
--    the same values several times faster (and decompresses faster for the readers). A PostgreSQL
--    built without lz4 keeps pglz. TimescaleDB passes the change to every chunk (compressed ones
--    included, for the rows written into them later); ALTER TABLE on a partitioned table does not
--    pass it to the existing partitions, so they are altered here (a partition made later takes its
--    parent's column compression, as any inherited column does).
DO $$
DECLARE
    col record;
    part regclass;
BEGIN
    FOR col IN SELECT * FROM (VALUES
            ('telemetry', 'body'), ('telemetry', 'point_metrics'), ('telemetry', 'point_values'),
            ('device_events', 'body')) AS t(tbl, att)
    LOOP
        EXECUTE format('ALTER TABLE %I ALTER COLUMN %I SET COMPRESSION lz4', col.tbl, col.att);
        IF yiju_storage_mode() <> 'timescaledb' THEN
            FOR part IN SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = col.tbl::regclass
            LOOP
                EXECUTE format('ALTER TABLE %s ALTER COLUMN %I SET COMPRESSION lz4', part, col.att);
            END LOOP;
        END IF;
    END LOOP;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'this PostgreSQL has no lz4: wide values stay compressed with pglz';
END
$$;
