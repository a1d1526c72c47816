#!/bin/sh
# Roles of the compose stack (run once by the TimescaleDB image on an empty volume): the application
# role owns the schema; Grafana's role reads what the dashboards read (docs/operations.md, "Grafana").
set -eu
psql -v ON_ERROR_STOP=1 --username postgres --dbname yiju <<SQL
CREATE ROLE yiju LOGIN PASSWORD '${YIJU_DB_PASSWORD:?}';
ALTER DATABASE yiju OWNER TO yiju;
ALTER SCHEMA public OWNER TO yiju;
CREATE EXTENSION IF NOT EXISTS timescaledb;
-- yiju doctor and migrate read shared_preload_libraries
GRANT pg_read_all_settings TO yiju;
CREATE ROLE grafana_reader LOGIN PASSWORD '${GRAFANA_DB_PASSWORD:?}';
GRANT CONNECT ON DATABASE yiju TO grafana_reader;
GRANT USAGE ON SCHEMA public TO grafana_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE yiju IN SCHEMA public GRANT SELECT ON TABLES TO grafana_reader;
SQL
