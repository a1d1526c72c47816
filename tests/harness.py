"""Real services for the test suite: one private PostgreSQL cluster and one private Mosquitto per test
session, on free loopback ports, so that tests can stop, restart or kill them.

`YIJU_TEST_DATABASE_URL` (a superuser URL, e.g. postgresql://postgres@127.0.0.1:5432/postgres) and
`YIJU_TEST_MQTT_URL` switch to external services instead; tests that must stop or kill a service then
skip, saying why.

Starting also reaps what killed sessions left running, and claims the new instances for this process
(tests/orphans.py), so that a killed run's servers are stopped by the next run at the latest.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from orphans import Reaped, claim, reap
from psycopg import sql

from storage.db import connection
from storage.migrate import migrate
from storage.status import database_status
from yiju.embedded import MosquittoBroker, PostgresServer, find_postgres, mosquitto_version
from yiju.settings import DatabaseSettings

MODES = ("partitioned", "timescaledb")


@dataclass
class ServiceSet:
    root: Path
    postgres: PostgresServer | None
    broker: MosquittoBroker | None
    admin_url: str
    mqtt_url: str
    pg_version: str
    timescaledb: str | None  # the TimescaleDB version usable on this server, if any
    mosquitto: str
    reaped: Reaped = field(default_factory=Reaped)
    _templates: dict[str, str] = field(default_factory=dict)
    _counter: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def default_mode(self) -> str:
        return "timescaledb" if self.timescaledb else "partitioned"

    def header(self) -> list[str]:
        where_pg = "private cluster" if self.postgres else "external (YIJU_TEST_DATABASE_URL)"
        where_mq = "private broker" if self.broker else "external (YIJU_TEST_MQTT_URL)"
        tsdb = (
            f"TimescaleDB {self.timescaledb}: used (hypertable mode) and partitioned mode both tested"
            if self.timescaledb
            else "TimescaleDB: not installed -> native partitioned mode only"
        )
        lines = [
            f"yiju services: PostgreSQL {self.pg_version} ({where_pg}); {tsdb}",
            f"yiju services: Mosquitto {self.mosquitto} ({where_mq}) at {self.mqtt_url}",
        ]
        if self.reaped:
            lines.append(
                f"yiju services: stopped {len(self.reaped.processes)} processes and removed "
                f"{len(self.reaped.directories)} directories left by killed sessions"
            )
        return lines

    def _template(self, mode: str) -> str:
        if mode not in self._templates:
            name = f"yiju_tpl_{mode}"
            with connection(self.admin_url, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            migrate(_with_db(self.admin_url, name), DatabaseSettings(timeseries_mode=mode))  # type: ignore[arg-type]
            with connection(self.admin_url, autocommit=True) as conn:
                # no connections (TimescaleDB's job scheduler included) so it can serve as a template
                conn.execute(
                    sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(sql.Identifier(name))
                )
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
                )
            self._templates[mode] = name
        return self._templates[mode]

    def create_database(self, mode: str | None = None) -> str:
        """A fresh, migrated database (cloned from a per-mode template); returns its URL."""
        mode = mode or self.default_mode
        template = self._template(mode)
        name = f"yiju_t{os.getpid()}_{next(self._counter)}"
        with connection(self.admin_url, autocommit=True) as conn:
            for _ in range(50):
                try:
                    conn.execute(
                        sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                            sql.Identifier(name), sql.Identifier(template)
                        )
                    )
                    break
                except psycopg.errors.ObjectInUse:  # a backend of the template may still be exiting
                    time.sleep(0.1)
        return _with_db(self.admin_url, name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with connection(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def stop(self) -> None:
        if self.broker is not None:
            self.broker.stop()
        if self.postgres is not None:
            self.postgres.destroy()
        shutil.rmtree(self.root, ignore_errors=True)


def _with_db(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


def start_services() -> ServiceSet:
    reaped = reap()
    root = Path(tempfile.mkdtemp(prefix="yiju-test-"))
    os.chmod(root, 0o755)
    claim(root)
    postgres: PostgresServer | None = None
    broker: MosquittoBroker | None = None
    try:
        admin_url = os.environ.get("YIJU_TEST_DATABASE_URL")
        if not admin_url:
            postgres = PostgresServer(root / "pg", fsync=False, binaries=find_postgres())
            postgres.start()
            admin_url = postgres.url
        mqtt_url = os.environ.get("YIJU_TEST_MQTT_URL")
        mq_version = "external"
        if not mqtt_url:
            broker = MosquittoBroker(root / "mqtt")
            broker.start()
            mqtt_url = broker.url
            mq_version = mosquitto_version(broker.binary)
        status = database_status(admin_url)
    except BaseException:
        if broker is not None:
            broker.stop()
        if postgres is not None:
            postgres.destroy()
        shutil.rmtree(root, ignore_errors=True)
        raise
    usable = (
        status.timescaledb_version if status.timescaledb_version and status.timescaledb_preloaded else None
    )
    return ServiceSet(
        root=root,
        postgres=postgres,
        broker=broker,
        admin_url=admin_url,
        mqtt_url=mqtt_url,
        pg_version=status.server_version,
        timescaledb=usable,
        mosquitto=mq_version,
        reaped=reaped,
    )
