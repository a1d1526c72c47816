"""Connections, with psycopg errors translated into Yiju's exception tree at this edge.

psycopg is storage's alone (tests/test_architecture.py and ruff's banned-api say so): callers name a
connection `Connection` and catch Yiju's errors. Work that runs storage functions on a connection it
holds goes inside `translated()`, which turns whatever psycopg raises into:
- `DatabaseUnavailable`: the connection failed or was lost, or a statement timed out (retry later);
- `DataRefused`: a constraint or a column refused the data (retrying the same write fails the same way);
- `StorageError`: anything else the database refused.
"""

from __future__ import annotations

import dataclasses
import select
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, TypeAlias, TypeVar

import psycopg
from psycopg import sql
from psycopg.rows import RowFactory, RowMaker, class_row
from psycopg_pool import ConnectionPool, PoolTimeout

from yiju.errors import DatabaseUnavailable, DataRefused, InputError, StorageError, YijuError

DEFAULT_CONNECT_TIMEOUT_S = 5.0

Connection: TypeAlias = psycopg.Connection[Any]
"""A database connection, as callers outside storage name it (they never import psycopg)."""


def translate(exc: psycopg.Error) -> YijuError:
    """The Yiju error for a psycopg one (module docstring)."""
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return DatabaseUnavailable(f"the database did not answer in time ({first_line(exc)})")
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return DatabaseUnavailable(f"the database connection failed ({first_line(exc)})")
    if isinstance(exc, psycopg.IntegrityError | psycopg.DataError):
        return DataRefused(f"the database refused the data: {first_line(exc)}")
    return StorageError(f"the database refused the operation: {first_line(exc)}")


@contextmanager
def translated() -> Iterator[None]:
    """Run a block of storage work with psycopg's errors raised as Yiju's (module docstring)."""
    try:
        yield
    except psycopg.Error as exc:
        raise translate(exc) from exc


def close_quietly(conn: Connection | None) -> None:
    """Close a connection that may already be broken; a failure to close is not worth reporting."""
    if conn is None:
        return
    with suppress(psycopg.Error):
        conn.close()


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
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {first_line(exc)}") from exc
    return conn


@contextmanager
def connection(url: str, *, autocommit: bool = False) -> Iterator[psycopg.Connection[Any]]:
    conn = connect(url, autocommit=autocommit)
    try:
        yield conn
    finally:
        conn.close()


_Record = TypeVar("_Record")


def record_row(cls: type[_Record]) -> RowFactory[_Record]:
    """psycopg's `class_row` for a dataclass, calling it by position when the query's columns are its
    fields in order (by name otherwise, as `class_row` does).

    Why: `class_row` builds a dict per row and calls the class with keywords; for a page of 100 devices
    that was about as much server CPU as the rest of the request (bench/api.py), by position half.
    """
    fields = tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
    by_name = class_row(cls)

    def factory(cursor: Any) -> RowMaker[_Record]:
        names = tuple(c.name for c in cursor.description or ())
        if names != fields:
            return by_name(cursor)

        def make(values: Sequence[Any]) -> _Record:
            return cls(*values)

        return make

    return factory


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def ensure_database(admin_url: str, name: str) -> bool:
    """Create database `name` on the server of `admin_url` if missing; True if it was created."""
    with connection(admin_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return True


def set_statement_timeout(conn: psycopg.Connection[Any], seconds: float) -> None:
    """Another statement timeout for the rest of the current transaction (e.g. a long import)."""
    conn.execute("SELECT set_config('statement_timeout', %s, true)", (f"{int(seconds * 1000)}ms",))


# ---------------------------------------------------------------------------------------------
# The pool of a long-running process (the API)


def check_idle_connection(conn: psycopg.Connection[Any]) -> None:
    """The pool's check of a connection it is about to hand out, without a round trip when it can.

    An idle session's socket has nothing to read: PostgreSQL speaks only when asked, except when it
    ends the session — a restart or `pg_terminate_backend` sends a FATAL error and closes it, a
    crashed backend's socket reads as closed. So a socket with nothing to read is a live session
    as far as a check can tell, and one that has something gets psycopg's full check (an empty query,
    which raises for a dead one: the pool then replaces it). Why: that empty query was one of the
    few statements of every API request, with its own Python layers and system calls (bench/api.py);
    a server that stopped answering without closing anything (frozen, partitioned) passes either
    check and is the request deadline's to catch.
    """
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN | select.POLLPRI)
    if poller.poll(0):
        ConnectionPool.check_connection(conn)


class Database:
    """Pooled connections for a long-running process, with every failure mode translated here.

    - A pooled connection is checked when it is taken (`check_idle_connection`): connections killed by
      a PostgreSQL restart (`AdminShutdown`) are replaced instead of failing the request that drew them.
    - Every statement has a server-side `statement_timeout`, and an idle-in-transaction session is
      ended by the server, so a stuck query cannot hold a connection forever.
    - Connection loss, a statement timeout and an exhausted pool raise `DatabaseUnavailable`
      (the API answers 503); a value the database cannot hold raises `InputError` (422).
    """

    def __init__(
        self,
        url: str,
        *,
        min_size: int,
        max_size: int,
        timeout_s: float,
        statement_timeout_s: float,
        application_name: str = "yiju",
    ) -> None:
        self.url = url
        self.statement_timeout_s = statement_timeout_s
        timeout_ms = max(1, int(statement_timeout_s * 1000))
        # plan_cache_mode: the list queries have optional filters (`%s IS NULL OR …`); psycopg prepares
        # a statement after 5 runs and PostgreSQL then switches to one generic plan that cannot drop
        # the absent filters — the device page went from ~10 ms to ~200 ms on its 11th run
        # (bench/api.py). A custom plan per run costs well under a millisecond.
        options = (
            f"-c timezone=UTC -c statement_timeout={timeout_ms} "
            f"-c idle_in_transaction_session_timeout={timeout_ms * 2} -c plan_cache_mode=force_custom_plan"
        )
        self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout_s,
            kwargs={
                "options": options,
                "application_name": application_name,
                "connect_timeout": max(1, int(timeout_s)),
            },
            check=check_idle_connection,
            open=False,
        )

    def open(self) -> None:
        self._pool.open(wait=False)

    def close(self) -> None:
        self._pool.close()

    @contextmanager
    def connection(self, *, autocommit: bool = False) -> Iterator[psycopg.Connection[Any]]:
        """One connection, one transaction: committed on success, rolled back on an exception.

        `autocommit=True` (the API's reads): each statement commits by itself, which saves the BEGIN
        and COMMIT round trips of a request that only reads — two of a short request's seven or so
        (bench/api.py). Never for a request that writes more than one row that belong together.
        """
        try:
            with self._pool.connection() as conn:
                if not autocommit:
                    yield conn
                    return
                conn.autocommit = True
                try:
                    yield conn
                finally:
                    # back to transactions before the pool hands it out again (a broken connection
                    # is discarded by the pool anyway)
                    with suppress(psycopg.Error):
                        conn.autocommit = False
        except PoolTimeout as exc:
            raise DatabaseUnavailable("the database is busy or unreachable; retry shortly") from exc
        except psycopg.errors.QueryCanceled as exc:
            raise DatabaseUnavailable(
                f"the database did not answer within {self.statement_timeout_s:g} s; retry shortly"
            ) from exc
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(f"the database connection failed ({first_line(exc)})") from exc
        except psycopg.DataError as exc:
            # schemas bound every input first; this is the backstop for a value PostgreSQL refuses
            raise InputError(f"a value cannot be stored: {first_line(exc)}") from exc
        except UnicodeEncodeError as exc:
            raise InputError("text is not valid Unicode (a lone surrogate?)") from exc
