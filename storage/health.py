"""What the monitoring of Yiju itself reads from the database: a liveness query, the newest message per
community, and the health of TimescaleDB's background jobs (read by `yiju.metrics` at scrape time).

Every query here is cheap at the design scale (a few hundred communities, ~7,000 devices each:
domain.md §2): they read the registry and `device_presence` (one row per device), never the time
series.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg


@dataclass(frozen=True, slots=True)
class CommunitySeen:
    code: str
    devices: int  # enabled devices
    last_seen: datetime | None  # newest message of any of them; None: never heard from


@dataclass(frozen=True, slots=True)
class JobHealth:
    name: str  # e.g. "policy_compression:telemetry", bounded by the policies migrate creates
    failing: bool
    last_success: datetime | None


@dataclass(frozen=True, slots=True)
class FleetHealth:
    communities: tuple[CommunitySeen, ...]
    jobs: tuple[JobHealth, ...]  # empty without TimescaleDB


def ping(conn: psycopg.Connection[Any], *, timeout_s: float) -> None:
    """A query answers, and the session's later queries give up after `timeout_s` (the probe runs at
    scrape time and must not outlast Prometheus's scrape timeout)."""
    conn.execute("SELECT set_config('statement_timeout', %s, false)", (f"{int(timeout_s * 1000)}ms",))


_COMMUNITIES = """
SELECT c.code, count(d.id) AS devices, max(p.last_seen) AS last_seen
FROM communities c
JOIN devices d ON d.community_id = c.id AND d.enabled
LEFT JOIN device_presence p ON p.device_id = d.id
GROUP BY c.code
ORDER BY c.code
"""

# Yiju's own policies (compression, retention, the rollup's refresh: each names its hypertable), not
# TimescaleDB's housekeeping jobs (telemetry, job-history retention), which say nothing about Yiju's
# data. "Failing" follows issue 14: a scheduled job that has not succeeded within twice its schedule
# interval, or that has only ever failed. A job that has not run yet is not failing.
_JOBS = """
SELECT j.proc_name || ':' || coalesce(ca.view_name, j.hypertable_name, j.job_id::text) AS name,
       CASE WHEN s.last_successful_finish IS NOT NULL
                 AND s.last_successful_finish > '-infinity'::timestamptz
            THEN now() - s.last_successful_finish > 2 * j.schedule_interval
            ELSE coalesce(s.total_failures, 0) > 0
       END AS failing,
       CASE WHEN s.last_successful_finish > '-infinity'::timestamptz
            THEN s.last_successful_finish END AS last_success
FROM timescaledb_information.jobs j
LEFT JOIN timescaledb_information.job_stats s ON s.job_id = j.job_id
LEFT JOIN timescaledb_information.continuous_aggregates ca
       ON ca.materialization_hypertable_schema = j.hypertable_schema
      AND ca.materialization_hypertable_name = j.hypertable_name
WHERE j.scheduled AND j.hypertable_name IS NOT NULL
ORDER BY name
"""


def fleet_health(conn: psycopg.Connection[Any]) -> FleetHealth:
    communities = tuple(
        CommunitySeen(str(code), int(n), last) for code, n, last in conn.execute(_COMMUNITIES).fetchall()
    )
    jobs: tuple[JobHealth, ...] = ()
    has_tsdb = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    if has_tsdb:
        jobs = tuple(JobHealth(str(n), bool(f), last) for n, f, last in conn.execute(_JOBS).fetchall())
    return FleetHealth(communities, jobs)
