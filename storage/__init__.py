"""The storage layer: every SQL statement of Yiju and its only use of psycopg live in this package.

PostgreSQL with TimescaleDB hypertables, compression and retention when the extension is available;
native range partitioning with application-driven retention otherwise. The hourly rollup is
application-maintained in both (storage.timeseries). The same queries run in both modes.

It exports nothing from here: callers import the module of what they need, each named for what it
stores: `db` (connections, the `Connection` type, psycopg errors translated into `yiju.errors`),
`config` (`DatabaseSettings`), `registry` and `registry_events`, `sites` (the site tree as people read
it), `presence`, `messages` (ingest's batch writes) and `readings` (telemetry read back), `dead_letters`,
`alarms`, `findings`, `commands`, `rule_state` and `replay` (the alert engine's), `escalation`
(emergency linkage), `indicators` and `maintenance` (assessments), `users` and `throttle`, `notify`
(the one LISTEN connection of a process), `health` and `status`, `timeseries` and `tsdb` (upkeep and
TimescaleDB), `migrate` and `dashboard_queries` (the SQL of the Grafana panels). Storage imports nothing
of Yiju above it but the pure device vocabulary (`devices`) and `yiju.errors` (tests/test_architecture.py).
"""
