"""The storage layer: every SQL statement of Yiju lives in this package.

PostgreSQL with TimescaleDB hypertables, compression, retention and continuous aggregates when the
extension is available; native range partitioning with application-driven retention and rollups
otherwise. The same queries run in both modes.
"""
