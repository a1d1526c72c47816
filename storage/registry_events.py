"""Registry change notifications: the `yiju_registry` channel that migration 0007's triggers notify.

Every write of a device's uid, community, family or enabled flag (API, CSV import, CLI, plain SQL)
announces the devices concerned in its own transaction, so a listener learns of the change when it
commits — before anyone could have told the device it is registered. `RegistryListener` holds the one
LISTEN connection; psycopg errors become `DatabaseUnavailable` here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from storage.db import connect
from yiju.errors import DatabaseUnavailable

REGISTRY_CHANNEL = "yiju_registry"
EVERYTHING = "*"
DEVICES_PREFIX = "d:"


@dataclass(frozen=True, slots=True)
class RegistryChange:
    """Devices whose registry rows changed; `uids` None: anything may have (reload everything)."""

    uids: frozenset[str] | None


def parse_change(payload: str) -> RegistryChange:
    if payload.startswith(DEVICES_PREFIX):
        return RegistryChange(frozenset(u for u in payload[len(DEVICES_PREFIX) :].split(",") if u))
    return RegistryChange(None)  # "*", or a payload this version does not know: the safe answer


class RegistryListener:
    """LISTEN on `yiju_registry`. Not thread-safe: one owner thread calls `open`, `wait`, `close`."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: psycopg.Connection[Any] | None = None

    def open(self, timeout_s: float) -> None:
        """Connect and LISTEN. Changes committed from now on are delivered by `wait`."""
        self.close()
        conn = connect(self._url, autocommit=True, timeout_s=timeout_s)
        try:
            conn.execute(f"LISTEN {REGISTRY_CHANNEL}")
        except psycopg.Error as exc:
            conn.close()
            raise DatabaseUnavailable(f"cannot listen for registry changes: {exc}") from exc
        self._conn = conn

    def wait(self, timeout_s: float) -> list[RegistryChange]:
        """The changes notified within `timeout_s` (empty if none); all of those already queued."""
        if self._conn is None:
            raise DatabaseUnavailable("registry listener is not connected")
        try:
            payloads = [n.payload for n in self._conn.notifies(timeout=timeout_s, stop_after=1)]
            if payloads:  # drain whatever else arrived with it, without waiting
                payloads += [n.payload for n in self._conn.notifies(timeout=0.0)]
        except psycopg.Error as exc:
            self.close()
            raise DatabaseUnavailable(f"registry listener lost the database: {exc}") from exc
        return [parse_change(p) for p in payloads]

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None
