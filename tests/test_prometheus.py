"""deploy/prometheus/ for real, with Debian's `prometheus` package: the rules compile and pass their
unit tests (every alert, firing and not), every alert has a runbook, and a real Prometheus on a free
loopback port scrapes a running `yiju run` and answers a recording rule over its HTTP API."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import ServiceSet
from ingest_support import Publisher, good_messages, register_fleet, wait_for

from storage.db import connection
from yiju.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent
PROM_DIR = ROOT / "deploy" / "prometheus"
RULES = PROM_DIR / "rules" / "yiju.rules.yml"
RULE_TESTS = PROM_DIR / "tests" / "yiju.test.yml"
OPERATIONS = ROOT / "docs" / "operations.md"

PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not installed (Debian package 'prometheus'; deploy/bootstrap.sh installs it)",
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, check=False, timeout=60)


def alerts() -> dict[str, dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return {r["alert"]: r for g in doc["groups"] for r in g["rules"] if "alert" in r}


@needs_promtool
def test_rules_and_config_pass_promtool_check() -> None:
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    config = promtool("check", "config", str(PROM_DIR / "prometheus.yml"))
    assert config.returncode == 0, config.stdout + config.stderr


@needs_promtool
def test_every_alert_passes_its_promtool_unit_tests() -> None:
    result = promtool("test", "rules", str(RULE_TESTS))  # its rule_files are relative to it
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_every_alert_has_a_unit_test_a_severity_and_a_runbook() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    tested = {t["alertname"] for group in tests for t in group.get("alert_rule_test", []) if t["exp_alerts"]}
    untouched = {
        t["alertname"] for group in tests for t in group.get("alert_rule_test", []) if not t["exp_alerts"]
    }
    docs = OPERATIONS.read_text()
    headings = {m.group(1) for m in re.finditer(r"^#### (Yiju\w+)", docs, re.MULTILINE)}
    for name, rule in alerts().items():
        assert name in tested, f"{name}: no promtool case where it fires"
        assert name in untouched, f"{name}: no promtool case where it stays quiet"
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert rule["annotations"]["runbook"] == f"docs/operations.md#{name.lower()}", name
        assert name in headings, f"{name}: no runbook section '#### {name}' in docs/operations.md"


# --------------------------------------------------------------------------------------------------
# A real Prometheus scraping a running `yiju run`


@dataclass
class Stack:
    prometheus_url: str
    metrics_url: str
    db_url: str
    log: Path

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result


def _test_config(metrics_port: int, prometheus_port: int) -> dict[str, Any]:
    """The shipped prometheus.yml with this test's targets and a 1 s cadence."""
    config: dict[str, Any] = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s", scrape_timeout="1s")
    config["rule_files"] = [str(PROM_DIR / "rules" / "*.yml")]
    targets = {"yiju": f"127.0.0.1:{metrics_port}", "prometheus": f"127.0.0.1:{prometheus_port}"}
    for job in config["scrape_configs"]:
        job["static_configs"] = [
            {"targets": [targets[job["job_name"]]] if job["job_name"] in targets else []}
        ]
    return config


@pytest.fixture(scope="module")
def stack(services: ServiceSet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if PROMETHEUS is None:
        pytest.skip("prometheus not installed (Debian package 'prometheus'; deploy/bootstrap.sh installs it)")
    tmp = tmp_path_factory.mktemp("prometheus")
    db_url = services.create_database()
    prefix = f"t{uuid.uuid4().hex[:12]}"
    metrics_port, api_port, prom_port = free_port(), free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("YIJU_")},
        "YIJU_DATABASE__URL": db_url,
        "YIJU_MQTT__URL": services.mqtt_url,
        "YIJU_MQTT__TOPIC_PREFIX": prefix,
        "YIJU_MQTT__CLIENT_ID": f"ingest-{prefix}",
        "YIJU_METRICS__PORT": str(metrics_port),
        "YIJU_STATE_DIR": str(tmp / "state"),
        "YIJU_LOG_LEVEL": "WARNING",
    }
    config = tmp / "prometheus.yml"
    config.write_text(yaml.safe_dump(_test_config(metrics_port, prom_port)))
    run_log, prom_log = tmp / "yiju-run.log", tmp / "prometheus.log"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with run_log.open("wb") as out:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "yiju.cli", "run", "--port", str(api_port)],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=ROOT,
                )
            )
        with prom_log.open("wb") as out:
            procs.append(
                subprocess.Popen(
                    [
                        str(PROMETHEUS),
                        f"--config.file={config}",
                        f"--storage.tsdb.path={tmp / 'tsdb'}",
                        f"--web.listen-address=127.0.0.1:{prom_port}",
                        "--log.level=warn",
                    ],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
        s = Stack(
            f"http://127.0.0.1:{prom_port}", f"http://127.0.0.1:{metrics_port}/metrics", db_url, run_log
        )

        def ready() -> bool:
            for proc, log in zip(procs, (run_log, prom_log), strict=True):
                assert proc.poll() is None, f"exited {proc.returncode}:\n{log.read_text()}"
            try:
                return any(r["value"][1] == "1" for r in s.query('up{job="yiju"}'))
            except OSError:
                return False

        wait_for(ready, 60, "Prometheus to scrape yiju run")
        # `yiju run` with the test's prefix, fed over MQTT once its session is up
        fleet = register_fleet(db_url, per_family=1)
        wait_for(
            lambda: any(r["value"][1] == "1" for r in s.query("yiju_ingest_broker_connected")),
            30,
            "ingest's MQTT session",
        )
        pub = Publisher(services.mqtt_url, f"pub-{prefix}")
        try:
            seq = 1

            def stored() -> bool:
                # re-published until ingest has subscribed (messages before that reach nobody)
                nonlocal seq
                msgs = good_messages(prefix, fleet, 20, start_seq=seq)
                seq += len(msgs)
                pub.publish(msgs)
                with connection(db_url) as conn:
                    row = conn.execute("SELECT count(*) FROM telemetry").fetchone()
                return bool(row and row[0])

            wait_for(stored, 30, "the first messages to be stored", interval_s=0.5)
        finally:
            pub.close()
        yield s
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        services.drop_database(db_url)


def test_prometheus_answers_a_recording_rule_over_a_running_stack(stack: Stack) -> None:
    def recorded() -> list[dict[str, Any]]:
        return [r for r in stack.query("yiju:ingest_received:rate5m") if float(r["value"][1]) > 0]

    wait_for(lambda: bool(recorded()), 30, "yiju:ingest_received:rate5m > 0")
    (sample,) = recorded()
    assert sample["metric"] == {"job": "yiju", "__name__": "yiju:ingest_received:rate5m"}
    # the fleet as the database sees it, through the scrape-time probe
    wait_for(lambda: bool(stack.query("yiju:community_data_age_seconds < 300")), 30, "community c1's age")
    (age,) = stack.query("yiju:community_data_age_seconds")
    assert age["metric"]["community"] == "c1"
    assert stack.query('yiju_database_up{job="yiju"} == 1')
    # and the rules are loaded and healthy: no alert of ours fires on a healthy stack
    with urllib.request.urlopen(f"{stack.prometheus_url}/api/v1/rules", timeout=10) as response:
        groups = json.loads(response.read())["data"]["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert {r["name"] for r in rules if r["type"] == "alerting"} == set(alerts())
    assert all(r["health"] == "ok" for r in rules), [r for r in rules if r["health"] != "ok"]
    firing = [r["name"] for r in rules if r["type"] == "alerting" and r["state"] == "firing"]
    assert firing == []


def test_every_dashboard_expression_runs_in_prometheus(stack: Stack) -> None:
    from yiju.grafana.dashboards import dashboards, targets  # noqa: PLC0415 - only this test needs them

    exprs = [
        t["expr"] for b in dashboards() for t in targets(b.json) if t["datasource"]["type"] == "prometheus"
    ]
    assert exprs
    for expr in exprs:
        stack.query(expr)  # raises unless Prometheus answers "success"
    # the headline panels have data on a running stack
    assert stack.query("min(yiju_database_up)")[0]["value"][1] == "1"
