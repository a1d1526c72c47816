"""Versioned SQL migrations with checksums, and the choice of storage mode.

`yiju db migrate` applies the files in `storage/migrations/` in order, each in its own transaction,
under an advisory lock (two processes migrating at once is safe). An applied migration whose file has
changed since is refused: the schema could no longer be trusted to match the code.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import psycopg

from storage.config import DatabaseSettings
from storage.db import connect
from storage.timeseries import StorageMode, apply_policies
from storage.tsdb import create_extension, server_offer
from yiju.errors import MigrationChecksumError, MigrationError, StorageError

# pg_advisory_lock key: "yiju" in ASCII, so it is recognisable in pg_locks
MIGRATION_LOCK_KEY = 0x7969_6A75
_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass
class MigrationReport:
    mode: StorageMode
    mode_reason: str
    applied: list[Migration] = field(default_factory=list)
    already_applied: int = 0


def load_migrations() -> list[Migration]:
    found: list[Migration] = []
    for entry in resources.files("storage.migrations").iterdir():
        match = _FILE_RE.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a version number: {versions}")
    return found


_BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS yiju_meta (
    key         text PRIMARY KEY,
    value       text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
"""


def migrate(url: str, settings: DatabaseSettings) -> MigrationReport:
    """Bring the database at `url` to the newest schema; idempotent."""
    migrations = load_migrations()
    with connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            conn.execute(_BOOTSTRAP)
            mode, reason = _decide_mode(conn, settings)
            applied = _applied(conn)
            _verify(applied, migrations)
            report = MigrationReport(mode=mode, mode_reason=reason, already_applied=len(applied))
            for migration in migrations:
                if migration.version in applied:
                    continue
                try:
                    with conn.transaction():
                        conn.execute(migration.sql.encode())
                        conn.execute(
                            "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                            (migration.version, migration.name, migration.checksum),
                        )
                except psycopg.Error as exc:
                    raise MigrationError(
                        f"migration {migration.version:04d}_{migration.name} failed: {exc}"
                    ) from exc
                report.applied.append(migration)
            apply_policies(conn, settings)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    return report


def pending(url: str) -> list[Migration]:
    """Migrations not yet applied (raises if the applied ones were edited)."""
    migrations = load_migrations()
    with connect(url, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
        applied = _applied(conn) if exists and exists[0] else {}
    _verify(applied, migrations)
    return [m for m in migrations if m.version not in applied]


def _applied(conn: psycopg.Connection[Any]) -> dict[int, str]:
    rows = conn.execute("SELECT version, checksum FROM schema_migrations ORDER BY version").fetchall()
    return {int(v): str(c) for v, c in rows}


def _verify(applied: dict[int, str], migrations: list[Migration]) -> None:
    known = {m.version: m for m in migrations}
    unknown = sorted(set(applied) - set(known))
    if unknown:
        raise MigrationError(
            f"the database has migrations this Yiju does not know ({unknown}); "
            "it was migrated by a newer version"
        )
    for version, checksum in applied.items():
        migration = known[version]
        if migration.checksum != checksum:
            raise MigrationChecksumError(
                f"migration {version:04d}_{migration.name}.sql was edited after it was applied "
                f"(checksum {checksum[:12]} in the database, {migration.checksum[:12]} on disk); "
                "add a new migration instead of editing an applied one"
            )


def _decide_mode(conn: psycopg.Connection[Any], settings: DatabaseSettings) -> tuple[StorageMode, str]:
    """Fix the storage mode the first time; later runs keep what the data was created with."""
    row = conn.execute("SELECT value FROM yiju_meta WHERE key = 'storage_mode'").fetchone()
    if row is not None:
        reason_row = conn.execute("SELECT value FROM yiju_meta WHERE key = 'storage_mode_reason'").fetchone()
        return _as_mode(row[0]), str(reason_row[0]) if reason_row else ""

    mode: StorageMode
    wanted = settings.timeseries_mode
    if wanted == "partitioned":
        mode, reason = "partitioned", "native partitioning requested in settings"
    else:
        ok, why = _try_timescaledb(conn)
        if ok:
            mode, reason = "timescaledb", why
        elif wanted == "timescaledb":
            raise StorageError(
                f"TimescaleDB was requested (timeseries_mode=timescaledb) but {why}; nothing was changed"
            )
        else:
            mode, reason = "partitioned", why
    conn.execute(
        "INSERT INTO yiju_meta (key, value) VALUES ('storage_mode', %s), ('storage_mode_reason', %s), "
        "('chunk_interval', %s)",
        (mode, reason, f"{int(settings.chunk_interval.total_seconds())} seconds"),
    )
    return mode, reason


def _try_timescaledb(conn: psycopg.Connection[Any]) -> tuple[bool, str]:
    offer = server_offer(conn)
    if offer.installed_version is None:
        return False, "the timescaledb extension is not installed on this PostgreSQL server"
    if not offer.preloaded:
        return False, "the timescaledb extension is installed but not in shared_preload_libraries"
    return create_extension(conn)


def _as_mode(value: str) -> StorageMode:
    if value == "timescaledb":
        return "timescaledb"
    if value == "partitioned":
        return "partitioned"
    raise StorageError(f"unknown storage mode {value!r} recorded in yiju_meta")
