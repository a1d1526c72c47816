"""The Grafana dashboards as code, tested as far as a machine without Grafana allows: every PromQL
expression compiles with promtool (and runs in a real Prometheus, tests/test_prometheus.py), every SQL
panel runs against the test database and returns rows of the expected shape, the dashboards round-trip
through the foundation SDK's types, `yiju grafana export` writes what Grafana's file provisioning
reads, and the upload runs against a real Grafana when GRAFANA_URL (and GRAFANA_TOKEN) are set."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import niquests
import pytest
import yaml
from grafana_foundation_sdk.models.dashboard import Dashboard

from devices.alarms import AlarmType
from storage import dashboard_queries as q
from storage.db import connection
from yiju.cli import main
from yiju.grafana.dashboards import (
    POSTGRES_TYPE,
    POSTGRES_UID,
    PROMETHEUS_UID,
    PostgresQuery,
    dashboards,
    targets,
    to_json,
)
from yiju.grafana.delivery import PASSWORD_ENV, Sources, provision

PROMTOOL = shutil.which("promtool")
PANEL_QUERIES = {v.sql: v for v in vars(q).values() if isinstance(v, q.PanelQuery)}
# the Grafana 11 macros and variables our SQL may use, and nothing else
MACROS = {"$__timeFilter", "$__timeGroupAlias"}
VARIABLES = {"$community"}


def prom_exprs() -> list[str]:
    return [
        t["expr"] for b in dashboards() for t in targets(b.json) if t["datasource"]["type"] == "prometheus"
    ]


def sql_targets() -> list[dict[str, Any]]:
    return [t for b in dashboards() for t in targets(b.json) if t["datasource"]["type"] == POSTGRES_TYPE]


def test_dashboards_round_trip_through_the_sdk_types() -> None:
    built = dashboards()
    assert {b.uid for b in built} == {"yiju-operations", "yiju-property"}
    for b in built:
        parsed = Dashboard.from_json(json.loads(json.dumps(b.json)))
        assert to_json(parsed) == b.json
        sql = [
            t
            for p in parsed.panels or []
            for t in getattr(p, "targets", None) or []
            if isinstance(t, PostgresQuery)
        ]
        assert len(sql) == sum(1 for t in targets(b.json) if t["datasource"]["type"] == POSTGRES_TYPE)
        for t in targets(b.json):
            assert t["datasource"]["uid"] in {PROMETHEUS_UID, POSTGRES_UID}


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package 'prometheus')")
def test_every_panel_promql_compiles(tmp_path: Path) -> None:
    exprs = prom_exprs()
    assert len(exprs) >= 15
    rules = {
        "groups": [
            {
                "name": "dashboard-panels",
                "rules": [{"record": f"yiju_dashboard:panel_{i}", "expr": e} for i, e in enumerate(exprs)],
            }
        ]
    }
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump(rules))
    assert PROMTOOL is not None
    result = subprocess.run(
        [PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout


def test_fault_types_are_alarm_types() -> None:
    assert set(q.FAULT_TYPES) <= {t.value for t in AlarmType}


def expand(sql: str, start: datetime, end: datetime, communities: list[str]) -> str:
    """Grafana 11's PostgreSQL macro expansion, for the macros our panels use."""
    assert set(re.findall(r"\$__\w+", sql)) <= MACROS, sql
    assert set(re.findall(r"\$(?!__)\w+", sql)) <= VARIABLES, sql
    lo, hi = start.isoformat(), end.isoformat()
    sql = re.sub(r"\$__timeFilter\(([^)]+)\)", rf"\1 BETWEEN '{lo}' AND '{hi}'", sql)

    def group(m: re.Match[str]) -> str:
        col, step = m.group(1).strip(), m.group(2)
        seconds = {"1h": 3600, "1d": 86400, "5m": 300}[step]
        return f'floor(extract(epoch from {col})/{seconds})*{seconds} AS "time"'

    sql = re.sub(r"\$__timeGroupAlias\(([^,]+),\s*'(\w+)'\)", group, sql)
    return sql.replace("$community", ", ".join(f"'{c}'" for c in communities))


def seed(db_url: str) -> None:
    now = datetime.now(UTC)
    with connection(db_url) as conn:
        for code in ("c1", "c2"):
            conn.execute("INSERT INTO communities (code, name) VALUES (%s, %s)", (code, f"{code} 小区"))
            conn.execute(
                "INSERT INTO devices (uid, community_id, family) "
                "SELECT %s, id, 'smoke_alarm' FROM communities WHERE code = %s",
                (f"{code}-smoke-1", code),
            )
        alarms = [
            # (community, type, severity, acknowledged after s, cleared)
            ("c1", "fire_alarm", "critical", 40.0, True),
            ("c1", "smoke_detector_fault", "major", None, False),
            ("c2", "device_offline", "minor", 300.0, False),
        ]
        for code, kind, severity, ack_s, cleared in alarms:
            first = now - timedelta(hours=2)
            conn.execute(
                """INSERT INTO alarms (community_id, device_id, type, severity, status, acknowledged,
                       acknowledged_at, cleared_at, first_at, last_at, source)
                   SELECT c.id, d.id, %s, %s, %s, %s, %s, %s, %s, %s, 'engine'
                   FROM communities c JOIN devices d ON d.community_id = c.id WHERE c.code = %s""",
                (
                    kind,
                    severity,
                    "cleared" if cleared else "active",
                    ack_s is not None,
                    first + timedelta(seconds=ack_s) if ack_s is not None else None,
                    now if cleared else None,
                    first,
                    first,
                    code,
                ),
            )
        for compliant in (True, True, False):
            conn.execute(
                """INSERT INTO compliance_findings (community_id, device_id, check_name, kind, compliant,
                       observed_at)
                   SELECT c.id, d.id, 'fault_alarm', 'silent_fault', %s, %s
                   FROM communities c JOIN devices d ON d.community_id = c.id WHERE c.code = 'c1'""",
                (compliant, now - timedelta(hours=1)),
            )
        conn.execute(
            "INSERT INTO dead_letters (received_at, topic, payload, payload_size, reason) "
            "VALUES (%s, 'yiju/v1/c1/x/telemetry', '\\x00', 1, 'unknown_device')",
            (now - timedelta(minutes=5),),
        )
        conn.commit()


def test_every_sql_panel_runs_and_returns_its_shape(db_url: str) -> None:
    seed(db_url)
    used = sql_targets()
    assert len(used) >= 6
    now = datetime.now(UTC)
    results: dict[str, list[tuple[Any, ...]]] = {}
    with connection(db_url) as conn:
        variable = conn.execute(q.COMMUNITIES.sql)
        assert [d.name for d in variable.description or []] == list(q.COMMUNITIES.columns)
        assert [r[0] for r in variable.fetchall()] == ["c1", "c2"]
        for t in used:
            panel = PANEL_QUERIES[t["rawSql"]]  # every panel's SQL is one of storage's queries
            assert t["format"] == ("time_series" if panel.time_series else "table")
            cur = conn.execute(expand(t["rawSql"], now - timedelta(days=1), now, ["c1", "c2"]))  # type: ignore[arg-type]
            assert [d.name for d in cur.description or []] == list(panel.columns), t["rawSql"]
            results[t["rawSql"]] = cur.fetchall()
    assert all(results.values()), [s for s, rows in results.items() if not rows]
    faults = results[q.OPEN_FAULTS.sql]
    assert sorted((r[0], r[3]) for r in faults) == [("c1", "smoke_detector_fault"), ("c2", "device_offline")]
    ack = {(r[0], r[1]): r for r in results[q.TIME_TO_ACKNOWLEDGE.sql]}
    assert float(ack["c1", "critical"][3]) == pytest.approx(40.0)
    (compliance,) = results[q.COMPLIANCE_RATES.sql]
    assert compliance[:4] == ("c1", "fault_alarm", 3, 2)
    assert float(compliance[4]) == pytest.approx(66.7)
    # the community filter filters
    with connection(db_url) as conn:
        only_c2 = conn.execute(
            expand(q.ALARMS_BY_COMMUNITY_AND_TYPE.sql, now - timedelta(days=1), now, ["c2"])
        ).fetchall()  # type: ignore[arg-type]
    assert {r[0] for r in only_c2} == {"c2"}


def test_export_writes_what_grafana_file_provisioning_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("YIJU_STATE_DIR", str(tmp_path / "state"))
    out = tmp_path / "grafana"
    pg = "postgresql://grafana_reader:s3cret@db.internal:5433/yiju"
    argv = [
        "grafana",
        "export",
        "--out",
        str(out),
        "--postgres-url",
        pg,
        "--dashboards-path",
        "/var/lib/grafana/dashboards/yiju",
    ]
    assert main(argv) == 0
    boards = {p.stem: json.loads(p.read_text()) for p in (out / "dashboards").glob("*.json")}
    assert boards == {b.uid: b.json for b in dashboards()}
    provider = yaml.safe_load((out / "provisioning" / "dashboards" / "yiju.yaml").read_text())
    (p,) = provider["providers"]
    assert p["type"] == "file" and p["folderUid"] == "yiju"
    assert p["options"]["path"] == "/var/lib/grafana/dashboards/yiju"
    text = (out / "provisioning" / "datasources" / "yiju.yaml").read_text()
    assert "s3cret" not in text  # the password comes from Grafana's environment
    sources = {d["uid"]: d for d in yaml.safe_load(text)["datasources"]}
    assert set(sources) == {PROMETHEUS_UID, POSTGRES_UID}
    pgds = sources[POSTGRES_UID]
    assert (
        pgds["type"] == POSTGRES_TYPE
        and pgds["url"] == "db.internal:5433"
        and pgds["user"] == "grafana_reader"
    )
    assert pgds["jsonData"]["database"] == "yiju"
    assert pgds["secureJsonData"]["password"] == f"${{{PASSWORD_ENV}}}"
    # a second export overwrites (same files, same content)
    assert main(argv) == 0
    assert {p.stem for p in (out / "dashboards").glob("*.json")} == set(boards)


def test_provision_needs_a_token(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("YIJU_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("GRAFANA_TOKEN", raising=False)
    assert (
        main(
            ["grafana", "provision", "--url", "http://127.0.0.1:1", "--postgres-url", "postgresql://r@h/yiju"]
        )
        == 1
    )
    assert "token" in capsys.readouterr().err


GRAFANA_URL = os.environ.get("GRAFANA_URL")


@pytest.mark.skipif(
    not GRAFANA_URL or not os.environ.get("GRAFANA_TOKEN"),
    reason="no Grafana server on this machine: set GRAFANA_URL and GRAFANA_TOKEN (a service-account token "
    "with admin rights) to test the upload against a real Grafana",
)
def test_provision_against_a_real_grafana() -> None:
    assert GRAFANA_URL is not None
    token = os.environ["GRAFANA_TOKEN"]
    sources = Sources("http://127.0.0.1:9090", "postgresql://grafana_reader:pw@127.0.0.1:5432/yiju")
    first = provision(GRAFANA_URL, token, sources)
    second = provision(GRAFANA_URL, token, sources)  # idempotent: overwrites by uid
    assert all(line.startswith("updated") for line in second.datasources)
    assert len(first.dashboards) == len(second.dashboards) == 2
    headers = {"Authorization": f"Bearer {token}"}
    for uid in ("yiju-operations", "yiju-property"):
        got = niquests.get(f"{GRAFANA_URL}/api/dashboards/uid/{uid}", headers=headers, timeout=10).json()
        assert got["meta"]["folderUid"] == "yiju"
        assert got["dashboard"]["version"] >= 2
    found = niquests.get(f"{GRAFANA_URL}/api/search?tag=yiju", headers=headers, timeout=10).json()
    assert sorted(d["uid"] for d in found) == ["yiju-operations", "yiju-property"]
