"""Batch writes of ingested messages: telemetry (with its points), device events, dead letters and
presence.

One transaction per batch, filled with binary COPY. A telemetry message is one row: its points go in
the row as three parallel arrays (metric, channel, value; migration 0028, issue 18), read back through
the `points` view. Writes are idempotent on the natural key
(device_id, ts, seq), so a batch redelivered by the broker after a crash or reconnect adds nothing:

- fast path: COPY straight into the tables. A unique violation (a redelivery) rolls the batch back
  and it is written again through the slow path;
- slow path: COPY into session-local staging tables, then INSERT … ON CONFLICT DO NOTHING. After a
  conflict the writer stays on the slow path for a while, because the rest of a redelivered window
  follows.

Partitioned mode refuses a row whose time has no partition; the writer creates the partitions the
batch needs (storage.timeseries.ensure_partitions) and retries. A row the database refuses for its
content (e.g. a JSON document jsonb cannot hold) is isolated: the batch is written row by row and the
refused rows are returned, so the caller can dead-letter them; one bad row never wedges the stream.

Connection failures are raised as `DatabaseUnavailable`; the caller retries the same batch.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import logging
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, NamedTuple

import psycopg
from psycopg import sql
from psycopg.types.json import set_json_dumps

from storage import pgbinary
from storage.config import DatabaseSettings
from storage.db import connect
from storage.dead_letters import DEAD_LETTER_COLUMNS, DEAD_LETTER_TYPES, DeadLetterRow, dead_letter_record
from storage.presence import PresenceRow, upsert_presence
from storage.timeseries import (
    WRITTEN_TABLES,
    ensure_partitions,
    late_cutoff,
    queue_late_points,
    refresh_pending,
)
from yiju.errors import DatabaseUnavailable, StorageError

log = logging.getLogger(__name__)

# After a redelivery conflict, stay on the idempotent slow path this long (the broker redelivers a
# whole in-flight window, which spans several batches).
SLOW_PATH_HOLD_S = 10.0
# Late points (storage.timeseries.late_cutoff) queue their hours in rollup_pending in the batch's
# transaction; the writer refreshes the queue at most this often (and the upkeep does too), in both
# storage modes (issue 14 item 3).
LATE_ROLLUP_INTERVAL_S = 30.0


class TelemetryRow(NamedTuple):  # a tuple: built once per message on the hot path
    ts: datetime
    device_id: int
    seq: int
    received_at: datetime
    body: bytes  # the JSON document as the device sent it
    points: Sequence[tuple[str, int, float]]  # (metric, channel, value)


class EventRow(NamedTuple):
    ts: datetime
    device_id: int
    seq: int
    received_at: datetime
    kind: str
    code: str | None
    channel: int
    body: bytes


@dataclass(slots=True)
class WriteBatch:
    telemetry: list[TelemetryRow] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)
    dead_letters: list[DeadLetterRow] = field(default_factory=list)
    presence: list[PresenceRow] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.telemetry) + len(self.events) + len(self.dead_letters)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A row the database refused for its content; `index` points into the batch's list `kind`."""

    kind: str  # "telemetry" | "event"
    index: int
    error: str


@dataclass(slots=True)
class WriteResult:
    telemetry: int = 0
    points: int = 0
    events: int = 0
    dead_letters: int = 0
    duplicates: int = 0  # telemetry and event rows already stored (redeliveries)
    slow_path: bool = False
    partitions_created: int = 0
    rejected: list[Rejected] = field(default_factory=list)


# jsonb's binary input is a version byte (1) and the JSON text (PostgreSQL's jsonb_recv): the devices'
# bytes go out as that through the C bytea dumper, with no Python dumps call per row (issue 18)
JSONB_V1 = b"\x01"
# Points arrays go out in array_recv's binary form, built here with struct (psycopg's list dumper is
# Python code per element: ~18 elements a message). The metric and channel arrays repeat per device
# model, so their encodings are cached; the values are packed per message.
_ARRAY_HEADER = pgbinary.ARRAY_HEADER
_INT2_OID, _FLOAT8_OID = 21, 701
ARRAY_CACHE_SIZE = 4096  # distinct metric / channel lists; a catalogue has a few dozen


@functools.lru_cache(maxsize=ARRAY_CACHE_SIZE)
def _text_array(items: tuple[str, ...]) -> bytes:
    return bytes(pgbinary.text_array(items))


@functools.lru_cache(maxsize=ARRAY_CACHE_SIZE)
def _int2_array(items: tuple[int, ...]) -> bytes:
    n = len(items)
    return struct.pack(
        _ARRAY_HEADER + "ih" * n, 1, 0, _INT2_OID, n, 1, *itertools.chain(*((2, c) for c in items))
    )


@functools.lru_cache(maxsize=256)
def _float8_struct(n: int) -> struct.Struct:
    return struct.Struct(_ARRAY_HEADER + "id" * n)


def _float8_array(values: tuple[float, ...]) -> bytes:
    n = len(values)
    args: list[float] = [8, 0.0] * n  # each element: its length (8 bytes), then the value
    args[1::2] = values
    return _float8_struct(n).pack(1, 0, _FLOAT8_OID, n, 1, *args)


TELEMETRY_COPY = (
    "COPY {} (ts, device_id, seq, received_at, body, point_metrics, point_channels, point_values) "
    "FROM STDIN (FORMAT BINARY)"
)
# body: JSONB_V1 + JSON; the arrays: array_recv's form (above); a message without points stores NULLs
TELEMETRY_TYPES = ["timestamptz", "int4", "int8", "timestamptz", "bytea", "bytea", "bytea", "bytea"]

# The telemetry COPY stream is built here whole, in PostgreSQL's binary COPY format (the file format
# of the COPY documentation: signature, flags, header extension; per row a field count and each field
# as its length and bytes; a -1 trailer), and sent as one block. psycopg's `write_row` formats the
# same bytes, but its dumper for `bytea` by type name is a Python class (`dbapi20.BinaryBinaryDumper`:
# two Python calls per field, four such fields a row) and each row goes through its Python layers:
# ≈ 10 µs per row against ≈ 5 here (bench/RESULTS.md, issue 18). Equality with psycopg's own bytes is
# tests/test_ingest_copy.py's.
COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # + flags (0) and header extension length (0)
COPY_TRAILER = b"\xff\xff"
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # timestamptz's binary form: µs since then, as int8
_ONE_US = timedelta(microseconds=1)
# 8 fields; ts (int8), device_id (int4), seq (int8), received_at (int8), each with its length; then the
# body's length (its bytes follow: version byte + JSON)
_TELEMETRY_ROW_HEAD = struct.Struct("!hiqiiiqiqi")
_NO_POINTS = b"\xff\xff\xff\xff" * 3  # three NULL fields


# device_events rows: 8 fields; ts, device_id, seq, received_at as in telemetry (kind, code, channel
# and the body follow)
_EVENT_ROW_HEAD = struct.Struct("!hiqiiiqiq")
_EVENT_TAIL = struct.Struct("!ihi")  # channel (int2, with its length), then the body's length
_NULL = b"\xff\xff\xff\xff"
TEXT_CACHE_SIZE = 4096  # event kinds and codes: a closed set per family, a few hundred in all


@functools.lru_cache(maxsize=TEXT_CACHE_SIZE)
def _text_field(value: str | None) -> bytes:
    if value is None:
        return _NULL
    data = value.encode()
    return struct.pack("!i", len(data)) + data


def events_copy_data(rows: Sequence[EventRow]) -> bytes:
    """The whole binary COPY stream of `rows` (columns of EVENTS_COPY); a row its column types cannot
    hold raises psycopg.DataError, as `telemetry_copy_data`."""
    out = [COPY_SIGNATURE]
    add = out.append
    head, tail = _EVENT_ROW_HEAD.pack, _EVENT_TAIL.pack
    received: datetime | None = None
    received_us = 0
    for ts, device_id, seq, received_at, kind, code, channel, body in rows:
        try:
            if received_at is not received:
                received, received_us = received_at, (received_at - _PG_EPOCH) // _ONE_US
            add(head(8, 8, (ts - _PG_EPOCH) // _ONE_US, 4, device_id, 8, seq, 8, received_us))
            add(_text_field(kind))
            add(_text_field(code))
            add(tail(2, channel, len(body) + 1))
        except (struct.error, TypeError, ValueError, OverflowError) as exc:
            raise psycopg.DataError(f"event of device {device_id} at {ts}: {exc}") from exc
        add(JSONB_V1)
        add(body)
    add(COPY_TRAILER)
    return b"".join(out)


@functools.lru_cache(maxsize=ARRAY_CACHE_SIZE)
def _text_array_field(items: tuple[str, ...]) -> bytes:
    data = _text_array(items)
    return struct.pack("!i", len(data)) + data


@functools.lru_cache(maxsize=ARRAY_CACHE_SIZE)
def _int2_array_field(items: tuple[int, ...]) -> bytes:
    data = _int2_array(items)
    return struct.pack("!i", len(data)) + data


@functools.lru_cache(maxsize=256)
def _float8_field_struct(n: int) -> struct.Struct:
    return struct.Struct("!i" + _ARRAY_HEADER[1:] + "id" * n)  # the field's length, then the array


def telemetry_copy_data(rows: Sequence[TelemetryRow]) -> tuple[bytes, int]:
    """The whole binary COPY stream of `rows` (columns of TELEMETRY_COPY) and the points in it.

    Raises psycopg.DataError for a row whose values its column types cannot hold (a channel beyond
    smallint, a metric name that is no UTF-8, a number that is no float): the batch is then written
    row by row and that row dead-lettered (`_write_isolating`), as when psycopg refused it."""
    out = [COPY_SIGNATURE]
    add = out.append
    pack = _TELEMETRY_ROW_HEAD.pack
    n_points = 0
    received: datetime | None = None
    received_us = 0
    for r in rows:
        ts, device_id, seq, received_at, body, pts = r
        try:
            if received_at is not received:  # the rows of one network read share one object
                received, received_us = received_at, (received_at - _PG_EPOCH) // _ONE_US
            add(pack(8, 8, (ts - _PG_EPOCH) // _ONE_US, 4, device_id, 8, seq, 8, received_us, len(body) + 1))
            add(JSONB_V1)
            add(body)
            if not pts:
                add(_NO_POINTS)
                continue
            metrics, channels, values = zip(*pts, strict=True)
            n = len(values)
            args: list[float] = [8, 0.0] * n  # each element: its length (8 bytes), then the value
            args[1::2] = values
            add(_text_array_field(metrics))
            add(_int2_array_field(channels))
            add(_float8_field_struct(n).pack(20 + 12 * n, 1, 0, _FLOAT8_OID, n, 1, *args))
        except (struct.error, TypeError, ValueError, OverflowError) as exc:  # UnicodeError is a ValueError
            raise psycopg.DataError(f"telemetry of device {device_id} at {ts}: {exc}") from exc
        n_points += n
    add(COPY_TRAILER)
    return b"".join(out), n_points


EVENTS_COPY = (
    "COPY {} (ts, device_id, seq, received_at, kind, code, channel, body) FROM STDIN (FORMAT BINARY)"
)
DEAD_LETTERS_COPY = f"COPY dead_letters ({DEAD_LETTER_COLUMNS}) FROM STDIN (FORMAT BINARY)"
EVENTS_TYPES = ["timestamptz", "int4", "int8", "timestamptz", "text", "text", "int2", "bytea"]  # JSONB_V1

_STAGING_DDL = (
    # named after the layout: a connection kept from before migration 0028 would have the old one
    "CREATE TEMP TABLE IF NOT EXISTS _yiju_stage_telemetry_arrays "
    "(ts timestamptz, device_id int4, seq int8, received_at timestamptz, body jsonb, "
    "point_metrics text[], point_channels int2[], point_values float8[]) ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE IF NOT EXISTS _yiju_stage_events "
    "(ts timestamptz, device_id int4, seq int8, received_at timestamptz, kind text, code text, "
    "channel int2, body jsonb) ON COMMIT DELETE ROWS",
)
_SLOW_TELEMETRY = (
    "WITH ins AS (INSERT INTO telemetry "
    "(ts, device_id, seq, received_at, body, point_metrics, point_channels, point_values) "
    "SELECT ts, device_id, seq, received_at, body, point_metrics, point_channels, point_values "
    "FROM _yiju_stage_telemetry_arrays ON CONFLICT DO NOTHING RETURNING point_values) "
    "SELECT count(*), coalesce(sum(cardinality(point_values)), 0) FROM ins"
)
_SLOW_EVENTS = (
    "INSERT INTO device_events (ts, device_id, seq, received_at, kind, code, channel, body) "
    "SELECT ts, device_id, seq, received_at, kind, code, channel, body FROM _yiju_stage_events "
    "ON CONFLICT DO NOTHING"
)


def _passthrough_dumps(obj: Any) -> str | bytes:
    """jsonb parameters are the devices' own JSON bytes, stored as they came (no re-serialisation)."""
    if isinstance(obj, bytes | bytearray | memoryview):
        return bytes(obj)
    return json.dumps(obj)


class _NoPartition(Exception):
    pass


class _Conflict(Exception):
    pass


class _RowRefused(Exception):
    pass


def _is_missing_partition(exc: psycopg.Error) -> bool:
    return isinstance(exc, psycopg.errors.CheckViolation) and "no partition" in str(exc)


def _is_connection_problem(exc: psycopg.Error, conn: psycopg.Connection[Any] | None) -> bool:
    return (
        isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
        or conn is None
        or conn.closed
        or conn.broken
    )


class IngestWriter:
    """Owns one connection; `write` one batch at a time from one thread."""

    def __init__(self, url: str, settings: DatabaseSettings) -> None:
        self._url = url
        self._settings = settings
        self._conn: psycopg.Connection[Any] | None = None
        self._slow_until = 0.0
        self._late_queued = False
        self._late_due = 0.0

    # -- connection -------------------------------------------------------------------------

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        self.close()
        conn = connect(self._url, timeout_s=self._settings.connect_timeout_s)
        try:
            set_json_dumps(_passthrough_dumps, context=conn)
            with conn.transaction():
                for ddl in _STAGING_DDL:
                    conn.execute(ddl)
            conn.execute("SET synchronous_commit = on")
            conn.commit()
        except psycopg.Error as exc:
            conn.close()
            raise DatabaseUnavailable(f"ingest writer cannot prepare its connection: {exc}") from exc
        self._conn = conn
        return conn

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):  # already broken: nothing to release
                self._conn.close()
            self._conn = None

    def ping(self) -> None:
        """Raise `DatabaseUnavailable` unless the database answers."""
        conn = self._connection()
        try:
            conn.execute("SELECT 1")
            conn.rollback()
        except psycopg.Error as exc:
            self.close()
            raise DatabaseUnavailable(f"database did not answer: {exc}") from exc

    # -- writing ----------------------------------------------------------------------------

    def write(self, batch: WriteBatch) -> WriteResult:
        """Commit the batch (idempotently) and return what was stored.

        Raises `DatabaseUnavailable` when the database cannot be reached (retry the same batch later)
        and `StorageError` for anything else that is not the batch's fault.
        """
        conn = self._connection()
        result = WriteResult()
        for _attempt in range(4):
            slow = time.monotonic() < self._slow_until
            try:
                self._write_once(conn, batch, slow, result)
                conn.commit()
                result.slow_path = slow
                self._after_commit(conn, batch)
                return result
            except _Conflict:
                conn.rollback()
                self._slow_until = time.monotonic() + SLOW_PATH_HOLD_S
                log.info("redelivered messages in a batch; writing idempotently for %.0f s", SLOW_PATH_HOLD_S)
            except _NoPartition:
                conn.rollback()
                result.partitions_created += self._create_partitions(conn, batch)
            except _RowRefused:
                conn.rollback()
                return self._write_isolating(conn, batch)
            except psycopg.Error as exc:
                self._fail(exc, conn)
        raise StorageError("batch could not be written after creating partitions and retrying")

    def _fail(self, exc: psycopg.Error, conn: psycopg.Connection[Any]) -> None:
        if _is_connection_problem(exc, conn):
            self.close()
            raise DatabaseUnavailable(f"database went away during a batch write: {exc}") from exc
        try:
            conn.rollback()
        except psycopg.Error:
            self.close()
        raise StorageError(f"batch write failed: {exc}") from exc

    def _write_once(
        self, conn: psycopg.Connection[Any], batch: WriteBatch, slow: bool, result: WriteResult
    ) -> None:
        try:
            with conn.cursor() as cur:
                if batch.telemetry:
                    if slow:
                        self._telemetry_slow(cur, batch.telemetry, result)
                    else:
                        self._telemetry_fast(cur, batch.telemetry, result)
                if batch.events:
                    self._events(cur, batch.events, slow, result)
                self._dead_letters_presence_late(cur, batch, result)
        except psycopg.errors.UniqueViolation as exc:
            raise _Conflict from exc
        except psycopg.Error as exc:
            if _is_missing_partition(exc):
                raise _NoPartition from exc
            if isinstance(exc, psycopg.DataError | psycopg.errors.IntegrityError) and not conn.broken:
                raise _RowRefused(str(exc)) from exc
            raise

    def _dead_letters_presence_late(
        self, cur: psycopg.Cursor[Any], batch: WriteBatch, result: WriteResult
    ) -> None:
        """What a batch writes besides its telemetry and events, on the fast, slow and isolating
        paths alike: its dead letters (COPY), the presence upserts, the late-point rollup queue."""
        if batch.dead_letters:
            with cur.copy(DEAD_LETTERS_COPY) as cp:
                cp.set_types(DEAD_LETTER_TYPES)
                for dl in batch.dead_letters:
                    cp.write_row(dead_letter_record(dl))
            result.dead_letters = len(batch.dead_letters)
        if batch.presence:
            upsert_presence(cur, batch.presence)
        self._queue_late(cur, batch)

    @staticmethod
    def _copy_telemetry(cur: psycopg.Cursor[Any], table: str, rows: list[TelemetryRow]) -> int:
        """COPY the rows, each with its points as three arrays; returns the points written."""
        data, n_points = telemetry_copy_data(rows)
        with cur.copy(sql.SQL(TELEMETRY_COPY).format(sql.Identifier(table))) as cp:
            cp.write(data)
        return n_points

    @classmethod
    def _telemetry_fast(cls, cur: psycopg.Cursor[Any], rows: list[TelemetryRow], result: WriteResult) -> None:
        result.points += cls._copy_telemetry(cur, "telemetry", rows)
        result.telemetry += len(rows)

    @classmethod
    def _telemetry_slow(cls, cur: psycopg.Cursor[Any], rows: list[TelemetryRow], result: WriteResult) -> None:
        cls._copy_telemetry(cur, "_yiju_stage_telemetry_arrays", rows)
        row = cur.execute(_SLOW_TELEMETRY).fetchone()
        inserted, points = (int(row[0]), int(row[1])) if row else (0, 0)
        result.telemetry += inserted
        result.points += points
        result.duplicates += len(rows) - inserted

    @staticmethod
    def _events(cur: psycopg.Cursor[Any], rows: list[EventRow], slow: bool, result: WriteResult) -> None:
        table = "_yiju_stage_events" if slow else "device_events"
        data = events_copy_data(rows)
        with cur.copy(sql.SQL(EVENTS_COPY).format(sql.Identifier(table))) as cp:
            cp.write(data)
        if slow:
            cur.execute(_SLOW_EVENTS)
            inserted = max(cur.rowcount, 0)
            result.events += inserted
            result.duplicates += len(rows) - inserted
        else:
            result.events += len(rows)

    def _write_isolating(self, conn: psycopg.Connection[Any], batch: WriteBatch) -> WriteResult:
        """Row by row (each in a savepoint, all in one transaction) to find the rows the database
        refuses; everything else in the batch is committed. Rare: only after a refused batch."""
        result = WriteResult(slow_path=True)
        try:
            with conn.cursor() as cur:
                for i, r in enumerate(batch.telemetry):
                    try:
                        with conn.transaction():
                            self._telemetry_slow(cur, [r], result)
                    except (psycopg.DataError, psycopg.errors.IntegrityError) as exc:
                        result.rejected.append(Rejected("telemetry", i, _first_line(exc)))
                for i, e in enumerate(batch.events):
                    try:
                        with conn.transaction():
                            self._events(cur, [e], True, result)
                    except (psycopg.DataError, psycopg.errors.IntegrityError) as exc:
                        result.rejected.append(Rejected("event", i, _first_line(exc)))
                self._dead_letters_presence_late(cur, batch, result)
            conn.commit()
        except psycopg.Error as exc:
            self._fail(exc, conn)
        log.warning("database refused %d row(s) of a batch; the rest is stored", len(result.rejected))
        return result

    # -- partitions (partitioned mode) and late rollups -------------------------------------

    def _create_partitions(self, conn: psycopg.Connection[Any], batch: WriteBatch) -> int:
        times = [r.ts for r in batch.telemetry] + [e.ts for e in batch.events]
        if not times:
            return 0
        lo, hi = min(times), max(times)
        conn.autocommit = True
        try:
            created = sum(
                len(ensure_partitions(conn, t.name, lo, hi, self._settings)) for t in WRITTEN_TABLES
            )
        finally:
            conn.autocommit = False
        log.info("created %d partition(s) for rows between %s and %s", created, lo, hi)
        return created

    def _queue_late(self, cur: psycopg.Cursor[Any], batch: WriteBatch) -> None:
        if not batch.telemetry:
            return
        now = datetime.now(UTC)
        cutoff = late_cutoff(now)
        # only the late times go on (queue_late_points checks them again), found with the cutoff in
        # each device time's own tzinfo object: aware datetimes sharing one compare field by field,
        # others through two utcoffset() calls and temporaries (≈ 1 µs a row, issue 18)
        late: list[datetime] = []
        tz: tzinfo | None = None
        bound = cutoff
        for r in batch.telemetry:
            ts = r.ts
            if ts.tzinfo is not tz:
                tz = ts.tzinfo
                bound = cutoff.astimezone(tz)
            if ts < bound and r.points:
                late.append(ts)
        if late and queue_late_points(cur, late, now):
            self._late_queued = True

    def _after_commit(self, conn: psycopg.Connection[Any], batch: WriteBatch) -> None:
        if not self._late_queued or time.monotonic() < self._late_due:
            return
        self._late_due = time.monotonic() + LATE_ROLLUP_INTERVAL_S
        conn.autocommit = True  # TimescaleDB refuses to refresh inside a transaction block
        try:
            ranges = refresh_pending(conn)
            self._late_queued = False
            log.info("rollup refreshed for late points in %d range(s)", len(ranges))
        except psycopg.Error as exc:  # still queued: the next round or the upkeep retries it
            log.warning("rollup refresh for late points failed (kept queued): %s", _first_line(exc))
        finally:
            if not conn.broken:
                conn.autocommit = False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
