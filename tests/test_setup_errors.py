"""Set-up errors a user can act on (issue 14 item 5): the Apache-only edition, a non-superuser role,
`yiju db migrate` without the broker's URL."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import ServiceSet
from psycopg import sql

from storage.db import connection, ensure_database
from storage.migrate import migrate
from yiju.embedded import PostgresServer
from yiju.errors import StorageError
from yiju.settings import DatabaseSettings


def _yiju(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("YIJU_") or k.startswith("YIJU_TEST_")}
    return subprocess.run(
        [sys.executable, "-m", "yiju.cli", *args],
        capture_output=True,
        text=True,
        env={**clean, **env},
        timeout=120,
        check=False,
    )


def test_db_migrate_needs_no_broker_url(services: ServiceSet, tmp_path: Path) -> None:
    url = services.admin_url.rsplit("/", 1)[0] + "/yiju_no_broker"
    services.drop_database(url)
    ensure_database(services.admin_url, "yiju_no_broker")
    try:
        env = {"YIJU_DATABASE__URL": url, "YIJU_STATE_DIR": str(tmp_path)}
        result = _yiju("db", "migrate", env=env)
        assert result.returncode == 0, result.stderr
        assert "applied 0012_timescale_operations" in result.stdout
        maintain = _yiju("db", "maintain", env=env)
        assert maintain.returncode == 0, maintain.stderr
    finally:
        services.drop_database(url)


def test_non_superuser_migrates_and_doctors_without_a_traceback(services: ServiceSet, tmp_path: Path) -> None:
    """The README's role owns its database and has no other rights: no pg_read_all_settings needed."""
    role, db = "yiju_app_role", "yiju_app_db"
    url = services.admin_url.rsplit("/", 1)[0] + "/" + db
    app_url = url.replace("://yiju@", f"://{role}@", 1)
    assert app_url != url, "the test expects the harness's superuser to be called yiju"
    services.drop_database(url)
    with connection(services.admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER").format(sql.Identifier(role)))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(db), sql.Identifier(role)))
    try:
        env = {"YIJU_DATABASE__URL": app_url, "YIJU_STATE_DIR": str(tmp_path)}
        result = _yiju("db", "migrate", env=env)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        mode = "timescaledb" if services.timescaledb else "partitioned"
        assert f"storage mode: {mode}" in result.stdout
        doctor = _yiju("doctor", env={**env, "YIJU_MQTT__URL": services.mqtt_url})
        assert "Traceback" not in doctor.stderr, doctor.stderr
        assert doctor.returncode == 0, doctor.stdout
        expected = f"{services.timescaledb} available" if services.timescaledb else "native partitioning"
        assert any(line.split()[1] == "timescale" and expected in line for line in doctor.stdout.splitlines())
    finally:
        services.drop_database(url)
        with connection(services.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture(scope="module")
def apache_server(services: ServiceSet) -> Iterator[PostgresServer]:
    """A second private cluster whose TimescaleDB runs as the Apache-only edition.

    The license cannot be changed in a session, only in the server's configuration.
    """
    if not services.timescaledb:
        pytest.skip(
            "TimescaleDB is not usable on this PostgreSQL (not installed, or not in "
            "shared_preload_libraries); the Apache-edition refusal needs it"
        )
    # under the harness's root, which the 'postgres' system user can reach when we run as root
    server = PostgresServer(services.root / "apache-pg", fsync=False, preload_timescaledb=True)
    server.init()
    with (server.data_dir / "postgresql.conf").open("a") as conf:
        conf.write("\ntimescaledb.license = 'apache'\n")
    try:
        server.start()
        yield server
    finally:
        server.destroy()


def test_apache_only_timescaledb_falls_back_with_the_reason(apache_server: PostgresServer) -> None:
    ensure_database(apache_server.url, "auto_mode")
    url = apache_server.url_for("auto_mode")
    report = migrate(url, DatabaseSettings())
    assert report.mode == "partitioned"
    assert "Apache-only edition (timescaledb.license=apache)" in report.mode_reason
    assert "\n" not in report.mode_reason
    with connection(url) as conn:
        # the probe left no extension behind, and the reason is recorded for `yiju doctor`
        assert conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'").fetchone() == (
            0,
        )
        reason = conn.execute("SELECT value FROM yiju_meta WHERE key = 'storage_mode_reason'").fetchone()
        assert reason == (report.mode_reason,)


def test_apache_only_timescaledb_is_refused_when_required(apache_server: PostgresServer) -> None:
    ensure_database(apache_server.url, "required_mode")
    url = apache_server.url_for("required_mode")
    with pytest.raises(StorageError) as caught:
        migrate(url, DatabaseSettings(timeseries_mode="timescaledb"))
    message = str(caught.value)
    assert "\n" not in message
    assert "Apache-only edition" in message and "community edition" in message
    with connection(url) as conn:
        # nothing recorded: the database is not stuck in a mode it cannot use
        assert conn.execute("SELECT count(*) FROM yiju_meta").fetchone() == (0,)
