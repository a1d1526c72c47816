"""What the database says about itself, for `yiju doctor` and the test-run header."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from storage.db import connection
from storage.tsdb import server_offer


@dataclass(frozen=True)
class DatabaseStatus:
    server_version: str
    timescaledb_version: str | None  # installed on the server (pg_available_extensions)
    timescaledb_preloaded: bool
    storage_mode: str | None  # None: not migrated yet
    storage_mode_reason: str | None


def database_status(url: str) -> DatabaseStatus:
    """Raises `DatabaseUnavailable` when the server cannot be reached."""
    with connection(url, autocommit=True) as conn:
        version = conn.execute("SHOW server_version").fetchone()
        offer = server_offer(conn)  # readable by any role (no pg_read_all_settings needed)
        mode: tuple[str | None, str | None] = (None, None)
        migrated = conn.execute("SELECT to_regclass('yiju_meta') IS NOT NULL").fetchone()
        if migrated and migrated[0]:
            row = conn.execute(
                "SELECT (SELECT value FROM yiju_meta WHERE key = 'storage_mode'), "
                "(SELECT value FROM yiju_meta WHERE key = 'storage_mode_reason')"
            ).fetchone()
            if row is not None:
                mode = (row[0], row[1])
    return DatabaseStatus(
        server_version=str(version[0]) if version else "unknown",
        timescaledb_version=offer.installed_version,
        timescaledb_preloaded=offer.preloaded,
        storage_mode=mode[0],
        storage_mode_reason=mode[1],
    )


def community_alert_overrides(url: str) -> list[tuple[str, dict[str, Any] | None]]:
    """Every community's code with its alert-setting overrides (`settings -> 'alerts'`), by code."""
    with connection(url, autocommit=True) as conn:
        rows = conn.execute("SELECT code, settings -> 'alerts' FROM communities ORDER BY code").fetchall()
    return [(str(r[0]), r[1] if isinstance(r[1], dict) else None) for r in rows]
