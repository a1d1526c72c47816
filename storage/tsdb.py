"""TimescaleDB: what the server offers, the policies Yiju keeps, and the health of their jobs.

Invariants, and what enforces them:
- The storage mode is chosen only with a TimescaleDB that can run all of Yiju's schema: the loader
  preloaded and the community (TSL) edition (`timescaledb.license = timescale`); `server_offer`
  finds out without superuser rights (no `shared_preload_libraries`, which needs
  `pg_read_all_settings`), and the edition is read inside a transaction that is rolled back.
- Policies are altered in place, never dropped and re-added: `ensure_policies` adds a missing one,
  alters only the settings that differ and keeps job ids and their history.
- A policy whose scheduled runs fail is still run: `fallback_runs` picks the jobs whose last scheduled
  run failed (or that have not succeeded within twice their interval), `run_job` runs one in this
  session (`CALL run_job`, which is what worked on PostgreSQL 15.20 + TimescaleDB 2.28.3 when every
  scheduled run failed with SQLSTATE 24000), and each such run is recorded in `tsdb_job_runs`.
  `CALL run_job` does not update TimescaleDB's own job_stats, hence Yiju's record.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from storage.db import connection

# A policy is unhealthy when it has not succeeded within this many schedule intervals (issue 14).
OVERDUE_INTERVALS = 2
_LOADER_GUC = "timescaledb.bgw_launcher_poll_time"  # defined by the loader library only when preloaded


@dataclass(frozen=True)
class ServerOffer:
    """What this server offers for TimescaleDB mode, read without superuser rights."""

    installed_version: str | None  # pg_available_extensions
    preloaded: bool  # the loader library is in shared_preload_libraries


def server_offer(conn: psycopg.Connection[Any]) -> ServerOffer:
    version = conn.execute(
        "SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchone()
    # A loader GUC registered as an integer exists only when the library was preloaded; a placeholder
    # set in postgresql.conf without the library would be a hidden string. pg_settings shows it to any
    # role, unlike shared_preload_libraries.
    loader = conn.execute("SELECT vartype FROM pg_settings WHERE name = %s", (_LOADER_GUC,)).fetchone()
    return ServerOffer(str(version[0]) if version else None, bool(loader and loader[0] == "integer"))


class _Probe(Exception):
    def __init__(self, license_: str, version: str) -> None:
        self.license = license_
        self.version = version


def create_extension(conn: psycopg.Connection[Any]) -> tuple[bool, str]:
    """Create the extension if it is the community edition; (usable, reason). `conn` is autocommit.

    The edition is known only once the extension's library is loaded, so it is created inside a
    transaction and rolled back when it is the Apache-only edition: no half-usable mode is left.
    """
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            row = conn.execute(
                "SELECT current_setting('timescaledb.license', true), "
                "(SELECT extversion FROM pg_extension WHERE extname = 'timescaledb')"
            ).fetchone()
            license_, version = (str(row[0] or ""), str(row[1] or "?")) if row else ("", "?")
            if license_ != "timescale":
                raise _Probe(license_, version)
    except _Probe as probe:
        return False, (
            f"TimescaleDB {probe.version} is the Apache-only edition "
            f"(timescaledb.license={probe.license or '?'}): compression and continuous aggregates "
            "need the community edition (license 'timescale')"
        )
    except psycopg.Error as exc:
        return False, f"CREATE EXTENSION timescaledb failed: {_first_line(exc)}"
    return True, f"TimescaleDB {version} extension available (community edition)"


# --------------------------------------------------------------------------------------------------
# Policies


@dataclass(frozen=True)
class Policy:
    """One policy as Yiju wants it. `settings` are the interval-valued config keys Yiju sets."""

    proc_name: str  # policy_compression | policy_retention | policy_refresh_continuous_aggregate
    target: str  # hypertable or continuous aggregate
    settings: dict[str, timedelta]
    schedule_interval: timedelta | None = None  # None: TimescaleDB's default for the policy


@dataclass(frozen=True)
class PolicyChange:
    job_id: int
    policy: Policy
    action: str  # added | altered | unchanged


def ensure_policies(conn: psycopg.Connection[Any], wanted: list[Policy]) -> list[PolicyChange]:
    """Make the jobs match `wanted`: add missing ones, alter what differs, keep job ids."""
    changes: list[PolicyChange] = []
    for policy in wanted:
        row = conn.execute(
            "SELECT job_id, config, schedule_interval FROM timescaledb_information.jobs "
            "WHERE proc_name = %s AND hypertable_name = %s ORDER BY job_id LIMIT 1",
            (policy.proc_name, policy.target),
        ).fetchone()
        if row is None:
            changes.append(PolicyChange(_add(conn, policy), policy, "added"))
            continue
        job_id, config, interval = int(row[0]), dict(row[1] or {}), row[2]
        current = {key: _as_interval(conn, config.get(key)) for key in policy.settings}
        new_config = dict(config)
        for key, value in policy.settings.items():
            if current[key] != value:
                new_config[key] = f"{int(value.total_seconds())} seconds"
        reschedule = policy.schedule_interval is not None and interval != policy.schedule_interval
        if new_config == config and not reschedule:
            changes.append(PolicyChange(job_id, policy, "unchanged"))
            continue
        conn.execute(
            "SELECT alter_job(%s, config => %s, schedule_interval => %s)",
            (job_id, Jsonb(new_config), policy.schedule_interval or interval),
        )
        changes.append(PolicyChange(job_id, policy, "altered"))
    return changes


def _as_interval(conn: psycopg.Connection[Any], text: object) -> timedelta | None:
    if text is None:
        return None
    row = conn.execute("SELECT %s::interval", (str(text),)).fetchone()
    return row[0] if row else None


def _add(conn: psycopg.Connection[Any], policy: Policy) -> int:
    s = policy.settings
    if policy.proc_name == "policy_compression":
        row = conn.execute(
            "SELECT add_compression_policy(%s::regclass, compress_after => %s, schedule_interval => %s)",
            (policy.target, s["compress_after"], policy.schedule_interval),
        ).fetchone()
    elif policy.proc_name == "policy_retention":
        row = conn.execute(
            "SELECT add_retention_policy(%s::regclass, drop_after => %s, schedule_interval => %s)",
            (policy.target, s["drop_after"], policy.schedule_interval),
        ).fetchone()
    else:
        row = conn.execute(
            "SELECT add_continuous_aggregate_policy(%s::regclass, start_offset => %s, end_offset => %s, "
            "schedule_interval => %s)",
            (policy.target, s["start_offset"], s["end_offset"], policy.schedule_interval),
        ).fetchone()
    assert row is not None
    return int(row[0])


# --------------------------------------------------------------------------------------------------
# Job health


@dataclass(frozen=True)
class JobHealth:
    """One Yiju policy job as TimescaleDB's scheduler and Yiju's fallback record it."""

    job_id: int
    proc_name: str
    target: str
    schedule_interval: timedelta
    last_success: datetime | None  # by the scheduler (job_stats.last_successful_finish)
    last_run_status: str | None  # Success | Failed | None (never ran)
    since: datetime | None  # last success, else the first run attempt, else the first scheduled start
    last_error: str | None  # the newest job_errors entry, "SQLSTATE …: message"
    last_error_at: datetime | None
    fallback_at: datetime | None  # Yiju's newest own run of it
    fallback_ok: bool | None

    def overdue(self, now: datetime) -> bool:
        """Not succeeded (by the scheduler) within twice its schedule interval."""
        return self.since is not None and now - self.since > OVERDUE_INTERVALS * self.schedule_interval

    def describe(self, now: datetime) -> str:
        parts = [f"job {self.job_id} {self.proc_name} on {self.target}"]
        if self.last_success is None:
            parts.append("has never succeeded in the scheduler")
        else:
            parts.append(f"last succeeded {_ago(now - self.last_success)} ago")
        parts.append(f"(interval {self.schedule_interval})")
        if self.last_error:
            parts.append(f"; last error {self.last_error_at:%Y-%m-%d %H:%M} UTC: {self.last_error}")
        if self.fallback_at is not None:
            outcome = "ok" if self.fallback_ok else "failed"
            parts.append(f"; Yiju's upkeep ran it itself {_ago(now - self.fallback_at)} ago ({outcome})")
        return " ".join(parts)


def job_health(conn: psycopg.Connection[Any]) -> list[JobHealth]:
    """Every policy job on Yiju's tables and aggregate (TimescaleDB's own jobs are not Yiju's)."""
    # History rows of runs that never started carry PostgreSQL's epoch (2000-01-01) or no outcome, and
    # timestamps may be ±infinity (never): both are left out, or `since` would be decades ago.
    rows = conn.execute(
        """
        SELECT j.job_id, j.proc_name, j.hypertable_name, j.schedule_interval,
               nullif(s.last_successful_finish, '-infinity'), s.last_run_status,
               (SELECT min(h.start_time) FROM timescaledb_information.job_history h
                 WHERE h.job_id = j.job_id AND h.succeeded IS NOT NULL AND h.start_time > '2000-01-01'),
               nullif(nullif(j.next_start, '-infinity'), 'infinity'), e.sqlerrcode, e.err_message,
               nullif(e.finish_time, '-infinity'),
               r.finished_at, r.ok
        FROM timescaledb_information.jobs j
        LEFT JOIN timescaledb_information.job_stats s ON s.job_id = j.job_id
        LEFT JOIN LATERAL (
            SELECT sqlerrcode, err_message, finish_time FROM timescaledb_information.job_errors x
            WHERE x.job_id = j.job_id ORDER BY x.finish_time DESC NULLS LAST LIMIT 1) e ON true
        LEFT JOIN LATERAL (
            SELECT finished_at, ok FROM tsdb_job_runs y WHERE y.job_id = j.job_id
            ORDER BY y.finished_at DESC LIMIT 1) r ON true
        WHERE j.proc_name IN ('policy_compression', 'policy_retention', 'policy_refresh_continuous_aggregate')
          AND j.hypertable_schema = 'public'
        ORDER BY j.job_id
        """
    ).fetchall()
    found: list[JobHealth] = []
    for (job_id, proc, target, interval, success, status, first_try, next_start, code, message,
         error_at, fallback_at, fallback_ok) in rows:  # fmt: skip
        error = f"SQLSTATE {code}: {message}" if message else None
        found.append(
            JobHealth(
                job_id=int(job_id),
                proc_name=str(proc),
                target=str(target),
                schedule_interval=interval,
                last_success=success,
                last_run_status=status,
                since=success or first_try or next_start,
                last_error=error,
                last_error_at=error_at,
                fallback_at=fallback_at,
                fallback_ok=fallback_ok,
            )
        )
    return found


def policy_jobs(url: str) -> list[JobHealth]:
    """`job_health` on a connection of its own (for `yiju doctor`)."""
    with connection(url, autocommit=True) as conn:
        return job_health(conn)


def needs_fallback(job: JobHealth, now: datetime) -> bool:
    """Run it ourselves when the scheduler's last run failed or it is overdue — at most once per
    schedule interval, like the scheduler would."""
    if job.last_run_status != "Failed" and not job.overdue(now):
        return False
    if job.last_success is not None and job.fallback_at is not None and job.last_success > job.fallback_at:
        return False  # the scheduler succeeded after our last run: it works again
    return job.fallback_at is None or now - job.fallback_at >= job.schedule_interval


@dataclass(frozen=True)
class FallbackRun:
    job_id: int
    proc_name: str
    target: str
    ok: bool
    error: str | None
    seconds: float


def run_job(conn: psycopg.Connection[Any], job: JobHealth) -> FallbackRun:
    """`CALL run_job` in this session and record it. `conn` must be autocommit."""
    started = time.monotonic()
    error: str | None = None
    try:
        conn.execute("CALL run_job(%s)", (job.job_id,))
    except psycopg.Error as exc:
        if conn.broken:
            raise
        error = f"SQLSTATE {exc.sqlstate}: {_first_line(exc)}"
    seconds = time.monotonic() - started
    conn.execute(
        "INSERT INTO tsdb_job_runs (job_id, proc_name, target, started_at, finished_at, ok, error) "
        "VALUES (%s, %s, %s, now() - make_interval(secs => %s), now(), %s, %s)",
        (job.job_id, job.proc_name, job.target, seconds, error is None, error),
    )
    return FallbackRun(job.job_id, job.proc_name, job.target, error is None, error, seconds)


def _ago(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172_800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
