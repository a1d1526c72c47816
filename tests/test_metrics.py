"""Every long-running process serves `/metrics` from one registry of its own, with bounded labels:
the runtime's parts (ingest, engine, API, upkeep, database probe) on a real broker and database, and
`yiju api` / `yiju run` as real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from ingest_support import Publisher, good_messages, register_fleet, wait_for, wait_rows
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from psycopg.types.json import Jsonb
from starlette.testclient import TestClient

from api.app import create_app
from ingest.metrics import ingest_metrics
from storage import health
from storage.db import connection
from yiju.embedded import free_port
from yiju.metrics import PROBE_TIMEOUT_S, DatabaseCollector, MetricsServer, ProcessMetrics
from yiju.runtime import Runtime
from yiju.settings import Settings
from yiju.stack import Endpoints

ROOT = Path(__file__).resolve().parent.parent
Samples = dict[str, list[tuple[dict[str, str], float]]]


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return parse(text)


def parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return sum(v for lab, v in samples.get(name, []) if all(lab.get(k) == x for k, x in labels.items()))


def test_runtime_serves_the_metrics_of_every_part(settings: Settings, db_url: str) -> None:
    assert settings.mqtt.url is not None
    fleet = register_fleet(db_url, per_family=1)
    uids = {u for us in fleet.values() for u in us}
    runtime = Runtime(settings, Endpoints(db_url, settings.mqtt.url, "test"))
    with MetricsServer(runtime.process.registry, "127.0.0.1", 0) as exporter, runtime:
        wait_for(runtime.ingest.consumer.subscribed.is_set, 15, "ingest subscription")
        pub = Publisher(settings.mqtt.url, f"pub-{uuid.uuid4().hex[:8]}")
        try:
            msgs = good_messages(settings.mqtt.topic_prefix, fleet, 40)
            pub.publish(msgs)
            wait_rows(db_url, msgs)
        finally:
            pub.close()
        with TestClient(create_app(runtime.settings, runtime.api_metrics)) as api:
            assert api.get("/api/v1/alarms/12345").status_code == 401
            assert api.get("/api/v1/alarms/67890").status_code == 401
            assert api.get("/no/such/page/dev-1").status_code == 404
            assert api.request("BREW", "/healthz").status_code == 405
            assert api.get("/healthz").status_code == 200

        def ingested() -> bool:
            s = scrape(exporter.url)
            return (
                value(s, "yiju_alerts_evaluated_total") >= len(msgs)
                and value(s, "yiju_ingest_held_messages") == 0
            )

        wait_for(ingested, 30, "the engine to evaluate every message and ingest to hold none")
        s = scrape(exporter.url)

    # ingest: received, stored, batches, commit latency, broker session
    assert value(s, "yiju_ingest_received_total") == len(msgs)
    assert value(s, "yiju_ingest_written_total", outcome="stored") == len(msgs)
    assert value(s, "yiju_ingest_batch_size_count") >= 1
    assert value(s, "yiju_ingest_write_seconds_count") >= 1
    assert value(s, "yiju_ingest_broker_connected") == 1
    assert value(s, "yiju_ingest_last_commit_timestamp_seconds") > 0
    # engine: evaluations, queue and its capacity, timers, output writes
    assert value(s, "yiju_alerts_queue_capacity") == settings.alerts.queue_size
    assert "yiju_alerts_timers_pending" in s and "yiju_alerts_backpressure_waits_total" in s
    assert value(s, "yiju_alerts_last_tick_timestamp_seconds") > 0
    # API: the route template, never the path sent; an invented method is "other"
    assert value(s, "yiju_api_requests_total", route="/api/v1/alarms/{alarm_id}", status="401") == 2
    assert value(s, "yiju_api_requests_total", route="unmatched", status="404") == 1
    assert value(s, "yiju_api_requests_total", method="other", status="405") == 1
    assert value(s, "yiju_api_request_duration_seconds_count", route="/healthz", method="GET") == 1
    assert "yiju_api_open_streams" in s
    # database probe and the fleet: the community heard from just now
    assert value(s, "yiju_database_up") == 1
    assert value(s, "yiju_community_devices", community="c1") == len(uids)
    assert value(s, "yiju_community_last_message_timestamp_seconds", community="c1") > 0
    # the process itself
    assert value(s, "yiju_build_info", process="run") == 1
    assert value(s, "process_resident_memory_bytes") > 0
    # bounded labels: no device uid, no raw path anywhere
    labels = {v for samples in s.values() for lab, _ in samples for v in lab.values()}
    assert not labels & uids
    assert not [v for v in labels if "12345" in v or "dev-1" in v]


def test_a_database_that_does_not_answer_is_a_value_not_a_failed_scrape() -> None:
    registry = CollectorRegistry()
    registry.register(DatabaseCollector(f"postgresql://yiju@127.0.0.1:{free_port()}/yiju", fleet=True))
    s = parse(generate_latest(registry).decode())
    assert value(s, "yiju_database_up") == 0
    assert value(s, "yiju_database_probe_seconds") < PROBE_TIMEOUT_S + 1
    assert "yiju_community_last_message_timestamp_seconds" not in s  # unknown, not "never"


def test_a_metric_set_is_registered_once_per_registry() -> None:
    """No duplicate-registration tricks: a second registration is an error, not a silent share."""
    process = ProcessMetrics("test")
    ingest_metrics(process.registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        ingest_metrics(process.registry)
    # a second process (or runtime in a test) has its own registry
    ingest_metrics(ProcessMetrics("test").registry)


def test_timescaledb_job_health(make_db: Callable[[str | None], str], storage_mode: str) -> None:
    url = make_db(storage_mode)
    with connection(url, autocommit=True) as conn:
        jobs = {j.name: j for j in health.fleet_health(conn).jobs}
        if storage_mode == "partitioned":
            assert jobs == {}
            return
        assert {"policy_compression:telemetry", "policy_retention:points_legacy"} <= set(jobs), jobs
        # the rollup is Yiju's own since migration 0028: its table's policies, no continuous aggregate
        assert {"policy_retention:points_rollup", "policy_compression:points_rollup"} <= set(jobs), jobs
        assert not [j for j in jobs.values() if j.failing]  # fresh: nothing has had time to fail
        # a compression policy (every 12 h) whose last success is 3 days old and that failed since
        job_id = conn.execute(
            "SELECT job_id FROM timescaledb_information.jobs "
            "WHERE proc_name = 'policy_compression' AND hypertable_name = 'telemetry'"
        ).fetchone()[0]  # type: ignore[index]
        last_ok = datetime.now(UTC) - timedelta(days=3)
        stat = {
            "job_id": job_id,
            "last_start": last_ok.isoformat(),
            "last_finish": last_ok.isoformat(),
            "next_start": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
            "last_successful_finish": last_ok.isoformat(),
            "last_run_success": False,
            "total_runs": 5,
            "total_duration": "00:00:01",
            "total_duration_failures": "00:00:01",
            "total_successes": 1,
            "total_failures": 4,
            "total_crashes": 0,
            "consecutive_failures": 4,
            "consecutive_crashes": 0,
            "flags": 0,
        }
        try:
            conn.execute(
                "INSERT INTO _timescaledb_internal.bgw_job_stat SELECT * FROM "
                "jsonb_populate_record(NULL::_timescaledb_internal.bgw_job_stat, %s)",
                (Jsonb(stat),),
            )
        except psycopg.Error as exc:
            pytest.skip(
                f"this TimescaleDB's job-statistics catalog differs; cannot fake a failing job: {exc}"
            )
        jobs = {j.name: j for j in health.fleet_health(conn).jobs}
    failing = jobs["policy_compression:telemetry"]
    assert failing.failing and failing.last_success is not None
    assert abs((failing.last_success - last_ok).total_seconds()) < 1
    assert not jobs["policy_retention:points_legacy"].failing


@pytest.fixture
def cli_env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    assert settings.database.url and settings.mqtt.url
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("YIJU_")},
        "YIJU_DATABASE__URL": settings.database.url,
        "YIJU_MQTT__URL": settings.mqtt.url,
        "YIJU_MQTT__TOPIC_PREFIX": settings.mqtt.topic_prefix,
        "YIJU_MQTT__CLIENT_ID": settings.mqtt.client_id,
        "YIJU_STATE_DIR": str(tmp_path / "state"),
        "YIJU_LOG_LEVEL": "WARNING",
    }


def test_yiju_api_serves_metrics_on_its_own_port(cli_env: dict[str, str], tmp_path: Path) -> None:
    api_port, metrics_port = free_port(), free_port()
    env = {**cli_env, "YIJU_METRICS__PORT": str(metrics_port)}
    log = tmp_path / "api.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "yiju.cli", "api", "--port", str(api_port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    try:

        def up() -> bool:
            assert proc.poll() is None, log.read_text()
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{api_port}/healthz", timeout=2).close()
            except OSError:
                return False
            return True

        wait_for(up, 30, "yiju api to answer")
        # the request is counted once its response is complete, which may be just after the client
        # has it: scrape until the count shows (seen 0 once on a loaded machine)
        wait_for(
            lambda: value(
                scrape(f"http://127.0.0.1:{metrics_port}/metrics"),
                "yiju_api_requests_total", route="/healthz", status="200",
            ) >= 1,
            10, "the /healthz request counted",
        )  # fmt: skip
        s = scrape(f"http://127.0.0.1:{metrics_port}/metrics")
        assert value(s, "yiju_database_up") == 1
        assert value(s, "yiju_build_info", process="api") == 1
        assert "yiju_community_devices" not in s  # the fleet is exported by the runtime only
    finally:
        proc.terminate()
        proc.wait(timeout=30)
