"""Login throttling (issue 10 §4): failed logins counted per key in a fixed window.

Keys are `user:<username>` and `addr:<client address>` (table `login_throttle`, migration 0011). A
key whose failures in the current window reached its limit is refused until that window ends; a
successful login clears its username's count (not the address's: one right password must not reset
a guessing run from that address). Counted in PostgreSQL, so every API process shares the counts
and a restart does not reset them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

import psycopg


def blocked_for(
    conn: psycopg.Connection[Any], limits: Mapping[str, int], window: timedelta
) -> tuple[str, float] | None:
    """(the blocked key, seconds until its window ends) for the key blocked longest, or None."""
    rows = conn.execute(
        "SELECT key, failures, extract(epoch FROM window_start + %s - now())::float8 FROM login_throttle "
        "WHERE key = ANY(%s) AND window_start > now() - %s",
        (window, sorted(limits), window),
    ).fetchall()
    blocked = [(str(key), float(left)) for key, failures, left in rows if failures >= limits[key]]
    return max(blocked, key=lambda b: b[1]) if blocked else None


def record_failure(conn: psycopg.Connection[Any], keys: Iterable[str], window: timedelta) -> None:
    """Count one failure for each key (a key whose window has passed starts a new one)."""
    with conn.cursor() as cur:
        cur.executemany(
            """
            INSERT INTO login_throttle AS t (key, window_start, failures) VALUES (%(key)s, now(), 1)
            ON CONFLICT (key) DO UPDATE SET
                failures = CASE WHEN t.window_start > now() - %(window)s
                                THEN t.failures + 1 ELSE 1 END,
                window_start = CASE WHEN t.window_start > now() - %(window)s
                                    THEN t.window_start ELSE now() END
            """,
            [{"key": k, "window": window} for k in sorted(set(keys))],
        )


def clear(conn: psycopg.Connection[Any], key: str) -> None:
    conn.execute("DELETE FROM login_throttle WHERE key = %s", (key,))


def purge(conn: psycopg.Connection[Any], window: timedelta) -> int:
    """Forget windows that have ended (run with the token purge)."""
    return conn.execute("DELETE FROM login_throttle WHERE window_start < now() - %s", (window,)).rowcount
