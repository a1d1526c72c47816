"""Storage upkeep of the running service (`yiju run`, `yiju demo`): one round every minute.

Each round is `storage.timeseries.run_maintenance`: partitions and retention in partitioned mode, the
rollup ranges that late data made stale in both modes, and in TimescaleDB mode the policy jobs whose
scheduled runs fail, run by Yiju itself (`CALL run_job`, recorded in `tsdb_job_runs`). What it did is
logged and counted in the process's Prometheus registry (`FallbackMetrics`, created once by the
composition root from `Runtime.process.registry`, as docs/operations.md §5 says), so the process's
`/metrics` endpoint shows it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter

from storage.config import DatabaseSettings
from storage.db import connection
from storage.timeseries import MaintenanceReport, run_maintenance

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FallbackMetrics:
    """What the upkeep did for TimescaleDB mode and late data. Whether a policy is failing is read at
    scrape time by `yiju.metrics.DatabaseCollector` (`yiju_timescaledb_job_failing{policy}`)."""

    fallback_runs: Counter
    late_ranges: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> FallbackMetrics:
        return cls(
            fallback_runs=Counter(
                "yiju_storage_policy_fallback_runs",
                "TimescaleDB policy jobs run by Yiju itself because the scheduler's runs failed",
                ["policy", "target", "outcome"],
                registry=registry,
            ),
            late_ranges=Counter(
                "yiju_storage_late_rollup_ranges",
                "Rollup ranges recomputed because late points were stored",
                registry=registry,
            ),
        )


class StorageUpkeep:
    """One round of upkeep per `step()`; the runtime's loop owns the thread that calls it."""

    def __init__(self, database_url: str, settings: DatabaseSettings, metrics: FallbackMetrics) -> None:
        self._url = database_url
        self._settings = settings
        self.metrics = metrics

    def step(self) -> MaintenanceReport:
        with connection(self._url, autocommit=True) as conn:
            report = run_maintenance(conn, self._settings)
        self.metrics.late_ranges.inc(len(report.late_ranges))
        for run in report.fallback_runs:
            outcome = "ok" if run.ok else "failed"
            self.metrics.fallback_runs.labels(run.proc_name, run.target, outcome).inc()
            log.warning(
                "TimescaleDB job %d %s on %s failed in the scheduler; ran it here: %s",
                run.job_id,
                run.proc_name,
                run.target,
                "ok" if run.ok else run.error,
            )
        return report
