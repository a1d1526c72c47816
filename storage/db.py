"""Connections, with psycopg errors translated into Yiju's exception tree at this edge."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, LiteralString

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from yiju.errors import DatabaseUnavailable

DEFAULT_CONNECT_TIMEOUT_S = 5.0


def connect(
    url: str, *, autocommit: bool = False, timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
) -> psycopg.Connection[Any]:
    """Open one connection in UTC, or raise `DatabaseUnavailable` with the server's reason."""
    try:
        conn = psycopg.connect(
            url,
            autocommit=autocommit,
            connect_timeout=max(1, int(timeout_s)),
            options="-c timezone=UTC",
            application_name="yiju",
        )
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {_first_line(exc)}") from exc
    return conn


@contextmanager
def connection(url: str, *, autocommit: bool = False) -> Iterator[psycopg.Connection[Any]]:
    conn = connect(url, autocommit=autocommit)
    try:
        yield conn
    finally:
        conn.close()


def fetch_dicts(
    conn: psycopg.Connection[Any], query: LiteralString, params: tuple[Any, ...] = ()
) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return cur.fetchall()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def ensure_database(admin_url: str, name: str) -> bool:
    """Create database `name` on the server of `admin_url` if missing; True if it was created."""
    with connection(admin_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return True
