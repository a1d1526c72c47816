"""`yiju doctor`: one plain line per check, non-zero exit when something is wrong."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psycopg
from harness import ServiceSet

from yiju.embedded import free_port


def _yiju(
    db_url: str, mqtt_url: str, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`yiju ARGS` in a process of its own; without `stdin` its standard input is not a terminal."""
    env = {**os.environ, "YIJU_DATABASE__URL": db_url, "YIJU_MQTT__URL": mqtt_url}
    return subprocess.run(
        [sys.executable, "-m", "yiju.cli", *args],
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def _doctor(db_url: str, mqtt_url: str) -> subprocess.CompletedProcess[str]:
    return _yiju(db_url, mqtt_url, "doctor")


def test_doctor_all_good(services: ServiceSet, db_url: str) -> None:
    result = _doctor(db_url, services.mqtt_url)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert all(line.startswith("ok") for line in lines), lines
    assert any("storage" in line and f"mode {services.default_mode}" in line for line in lines)
    assert any(line.split()[1] == "broker" for line in lines)


def test_doctor_stopped_database_and_broker(services: ServiceSet) -> None:
    dead_pg = f"postgresql://yiju@127.0.0.1:{free_port()}/yiju"
    dead_mq = f"mqtt://127.0.0.1:{free_port()}"
    result = _doctor(dead_pg, dead_mq)
    assert result.returncode != 0
    failures = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert len(failures) == 2, result.stdout
    assert "database" in failures[0] and "cannot connect to PostgreSQL" in failures[0]
    assert "broker" in failures[1] and "cannot connect to mqtt://127.0.0.1" in failures[1]


def test_doctor_unmigrated_database(services: ServiceSet) -> None:
    result = _doctor(services.admin_url, services.mqtt_url)
    assert result.returncode == 1
    assert any(
        line.startswith("FAIL") and "not migrated: run `yiju db migrate`" in line
        for line in result.stdout.splitlines()
    )


def test_doctor_without_configuration_says_how_to_start(tmp_path: object) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YIJU_")}
    env["YIJU_STATE_DIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "yiju.cli", "doctor"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "YIJU_DATABASE__URL and YIJU_MQTT__URL not set" in result.stdout
    assert "yiju demo" in result.stdout


def test_doctor_warns_for_communities_on_unsourced_defaults(services: ServiceSet, db_url: str) -> None:
    required = {"cctv_recorder": {"gap_tolerance_s": 600, "retention_hysteresis_s": 1800}}
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO communities (code, name) VALUES ('plain', 'P'), ('plain2', 'P2')")
        conn.execute(
            "INSERT INTO communities (code, name, settings) VALUES ('tuned', 'T', %s)",
            (json.dumps({"alerts": required}),),
        )
    result = _doctor(db_url, services.mqtt_url)
    assert result.returncode == 0, result.stdout + result.stderr  # a warning, not a failure
    warns = [line for line in result.stdout.splitlines() if line.startswith("warn")]
    assert len(warns) == 2, result.stdout  # 'plain' and 'plain2' share one line; 'tuned' has its own
    plain = next(w for w in warns if "(plain, plain2)" in w)
    assert "cctv_recorder.gap_tolerance_s" in plain and "ebike_charger.port_current_limit_a" in plain
    tuned = next(w for w in warns if "(tuned)" in w)
    assert "cctv_recorder.gap_tolerance_s" not in tuned and "ebike_charger.port_current_limit_a" in tuned


def test_doctor_defaults_line_does_not_call_a_warning_required(services: ServiceSet, db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO communities (code, name) VALUES ('solo', 'S')")
    result = _doctor(db_url, services.mqtt_url)
    [warn] = [line for line in result.stdout.splitlines() if line.startswith("warn")]
    # a warning with exit 0 cannot say "required"; it says what is missing (a source) and what to do
    assert "required" not in warn and "(ies)" not in warn and "(s)" not in warn
    assert "1 community (solo) runs on" in warn and "no source confirms" in warn
    assert result.returncode == 0


def _users_add(db_url: str, mqtt_url: str, *args: str, stdin: str | None) -> subprocess.CompletedProcess[str]:
    return _yiju(db_url, mqtt_url, "users", "add", *args, stdin=stdin)


def test_users_add_without_a_terminal_asks_for_password_stdin(services: ServiceSet, db_url: str) -> None:
    result = _users_add(db_url, services.mqtt_url, "night1", "--role", "operator", stdin=None)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "no terminal to ask for the password: pipe it in with --password-stdin" in result.stderr
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM users WHERE username = 'night1'").fetchone() == (0,)
    args = ("night1", "--role", "operator", "--password-stdin")
    empty = _users_add(db_url, services.mqtt_url, *args, stdin="")
    assert empty.returncode == 1 and "held no password" in empty.stderr
    ok = _users_add(db_url, services.mqtt_url, *args, stdin="correct-horse-battery\n")
    assert ok.returncode == 0, ok.stderr
    assert "user night1" in ok.stdout
