"""The Prometheus metrics of one Yiju process: its registry, its `/metrics` server, and the metric sets
of the parts that run in it.

Contract (docs/operations.md, "Metrics"):
- **One registry per process.** The composition root builds one `ProcessMetrics` per process
  (`yiju run`, `yiju api`, each `yiju ingest` worker, `yiju demo`) and creates every part's metric set
  from `process.registry` exactly once, then hands the set to the part (`IngestService(metrics=…)`).
  Nothing registers on prometheus_client's global default registry, and nothing looks a metric up
  to avoid registering it twice: a second registration of a name is a bug, and prometheus_client's
  own duplicate check turns it into an error at start.
- **Bounded labels.** A label's values come from a fixed vocabulary (family, reason, outcome, route
  template, status code, queue, job) or from the communities of the deployment, never from a
  device id, a uid, a user or free text: a label value is a time series for as long as Prometheus
  keeps data.
- **Names** are `yiju_<part>_<what>[_<unit>]` (`_total` is added by prometheus_client to counters);
  timestamps are `…_timestamp_seconds` (Unix time), durations `…_seconds`.

Adding a part's metrics (linkage, TimescaleDB job upkeep, …): write a frozen dataclass with a
`create(registry)` class method in the part's own `metrics.py` (as `ingest/metrics.py`), create it in
the composition root from `process.registry` (see `Runtime`), and pass it to the part. Then add the
series to `deploy/prometheus/` (rules, and a `promtool test rules` case for every alert) and, if an
operator should see it, a panel in `yiju/grafana/dashboards.py`; `tests/test_prometheus.py` checks
that every alert has promtool cases and a runbook in docs/operations.md.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from storage import health
from storage.db import connect
from yiju import __version__
from yiju.errors import ConfigurationError, YijuError

log = logging.getLogger(__name__)

# The database probe runs at scrape time; it must answer well inside Prometheus's scrape timeout
# (10 s by default, deploy/prometheus/prometheus.yml) even when the server does not answer at all.
PROBE_TIMEOUT_S = 3.0


class ProcessMetrics:
    """The registry of this process, with the process's own series (CPU, memory, GC, build)."""

    def __init__(self, process: str) -> None:
        self.process = process
        self.registry = CollectorRegistry(auto_describe=True)
        # the collectors prometheus_client puts on its default registry, here on ours
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self.registry.register(collector)
        info = Gauge(
            "yiju_build_info",
            "Always 1; the labels say which Yiju and which process this is",
            ["version", "process"],
            registry=self.registry,
        )
        info.labels(__version__, process).set(1)
        started = Gauge(
            "yiju_process_started_timestamp_seconds", "When this Yiju process started", registry=self.registry
        )
        started.set(time.time())


class MetricsServer:
    """Serves `/metrics` of one registry on its own port (prometheus_client's threaded HTTP server).

    Owned: `start` binds (port 0 picks a free one, see `port`; None: off, start and stop do nothing),
    `stop` closes it; a context manager stops it on exit. It runs in its own daemon thread, never on
    the API's event loop."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int | None) -> None:
        self._registry = registry
        self.host = host
        self._port = port
        self._server: Any = None
        self._thread: Any = None

    @property
    def port(self) -> int | None:
        return int(self._server.server_port) if self._server is not None else self._port

    @property
    def url(self) -> str:
        if self._port is None:
            return "off"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def start(self) -> None:
        if self._server is not None or self._port is None:
            return
        try:
            self._server, self._thread = start_http_server(
                self._port, addr=self.host, registry=self._registry
            )
        except OSError as exc:
            busy = exc.errno == errno.EADDRINUSE
            hint = " (another process listens there: set YIJU_METRICS__PORT)" if busy else ""
            raise ConfigurationError(
                f"cannot serve /metrics on {self.host}:{self._port}: {exc.strerror or exc}{hint}"
            ) from exc

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> MetricsServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class UpkeepMetrics:
    """Storage upkeep of the runtime (partitions ahead, retention, rollups; `storage.timeseries`)."""

    runs: Counter
    last_success: Gauge
    duration_seconds: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry) -> UpkeepMetrics:
        return cls(
            runs=Counter(
                "yiju_upkeep_runs",
                "Storage upkeep rounds, by outcome (ok, error)",
                ["outcome"],
                registry=registry,
            ),
            last_success=Gauge(
                "yiju_upkeep_last_success_timestamp_seconds",
                "When the last storage upkeep round succeeded (0: none yet)",
                registry=registry,
            ),
            duration_seconds=Histogram(
                "yiju_upkeep_duration_seconds",
                "Time of one storage upkeep round",
                buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300),
                registry=registry,
            ),
        )


class DatabaseCollector(Collector):
    """What the database looks like from this process, read at scrape time (no background thread).

    Always: `yiju_database_up` (1 when a connection and a query succeed within `PROBE_TIMEOUT_S`) and
    `yiju_database_probe_seconds`. With `fleet=True` (the one process that owns ingest and upkeep,
    so that series are not exported twice): the newest message of every community with enabled
    devices, and the health of TimescaleDB's background jobs when the database runs them.
    """

    def __init__(self, database_url: str, *, fleet: bool) -> None:
        self._url = database_url
        self._fleet = fleet

    def describe(self) -> Iterable[Any]:
        # without this, registering would call collect() and so touch the database
        return list(self._families(probe_ok=False, seconds=0.0, rows=None))

    def collect(self) -> Iterable[Any]:
        t0 = time.perf_counter()
        rows: health.FleetHealth | None = None
        ok = False
        try:
            conn = connect(self._url, autocommit=True, timeout_s=PROBE_TIMEOUT_S)
        except YijuError as exc:
            log.debug("metrics: database probe failed: %s", exc)
        else:
            try:
                health.ping(conn, timeout_s=PROBE_TIMEOUT_S)
                ok = True
                if self._fleet:
                    rows = health.fleet_health(conn)
            except Exception as exc:  # noqa: BLE001 - a failed probe is a value (0), never a failed scrape
                log.warning("metrics: database probe failed: %s", exc)
            finally:
                conn.close()
        return list(self._families(probe_ok=ok, seconds=time.perf_counter() - t0, rows=rows))

    def _families(self, *, probe_ok: bool, seconds: float, rows: health.FleetHealth | None) -> Iterator[Any]:
        up = GaugeMetricFamily("yiju_database_up", "1 when this process can reach and query PostgreSQL")
        up.add_metric([], 1.0 if probe_ok else 0.0)
        yield up
        took = GaugeMetricFamily(
            "yiju_database_probe_seconds", "Time of the last database probe (connect + query)"
        )
        took.add_metric([], seconds)
        yield took
        if not self._fleet:
            return
        seen = GaugeMetricFamily(
            "yiju_community_last_message_timestamp_seconds",
            "Newest message received from any enabled device of the community (0: never)",
            labels=["community"],
        )
        devices = GaugeMetricFamily(
            "yiju_community_devices", "Enabled devices of the community", labels=["community"]
        )
        failing = GaugeMetricFamily(
            "yiju_timescaledb_job_failing",
            "1 while a TimescaleDB job has not succeeded within twice its schedule interval",
            labels=["policy"],
        )
        last_ok = GaugeMetricFamily(
            "yiju_timescaledb_job_last_success_timestamp_seconds",
            "When the TimescaleDB job last succeeded (0: never)",
            labels=["policy"],
        )
        if rows is not None:
            for c in rows.communities:
                seen.add_metric([c.code], c.last_seen.timestamp() if c.last_seen else 0.0)
                devices.add_metric([c.code], float(c.devices))
            for j in rows.jobs:
                failing.add_metric([j.name], 1.0 if j.failing else 0.0)
                last_ok.add_metric([j.name], j.last_success.timestamp() if j.last_success else 0.0)
        yield from (seen, devices, failing, last_ok)


def serve_metrics(
    registry: CollectorRegistry, host: str, port: int, *, any_port: bool = False
) -> MetricsServer:
    """Start serving `registry` on host:port; port 0 (the settings' "off") gives a server that serves
    nothing. With `any_port` (the demo) a busy port is not an error: a free one is used and logged."""
    server = MetricsServer(registry, host, port or None)
    try:
        server.start()
    except ConfigurationError:
        if not any_port:
            raise
        log.warning("port %d is busy; serving /metrics on a free port instead", port)
        server = MetricsServer(registry, host, 0)
        server.start()
    return server
