"""The alarm history (issue 13 §7): alarms that ended — cleared, or closed by the handling workflow —
searched by time, type, device, building and handling result, one page at a time or as a bounded
export for CSV/XLSX.

Rows are `HistoryRow`s: the alarm as `storage.alarms` reads it plus what a report of it needs — the
community's name, the time stamps in the community's own time zone (`communities.timezone`, an IANA
name validated where it is written), and the comment of the 'resolved' step (0018_handling.sql).

Invariants and what enforces them:
- every query is scoped: `HistoryFilter.community_ids` is required (None means all communities and is
  only passed for an admin by the API's `Principal.scope_for`);
- an export never reads more than `max_rows` rows: `export` asks for max_rows + 1 and raises
  `ExportTooLarge` with the count instead of returning a truncated list as if it were complete;
- the device filter is a substring match with LIKE's metacharacters escaped, so `%` or `_` in a
  search match themselves.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, LiteralString

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from storage.alarms import AlarmResult, HandlingStep, InvalidCursor
from yiju.errors import InputError

PAGE_LIMIT_MAX = 500


class ExportTooLarge(InputError):
    """The filtered history has more rows than an export may hold; narrow the filters."""

    def __init__(self, rows: int, max_rows: int) -> None:
        super().__init__(f"{rows} alarms match; an export holds at most {max_rows}")
        self.rows = rows
        self.max_rows = max_rows


@dataclass(frozen=True, slots=True)
class HistoryFilter:
    """Filters of the history search; they combine with AND. Times bound `first_at` (when the alarm
    began): since ≤ first_at < until."""

    community_ids: Sequence[int] | None
    since: datetime | None = None
    until: datetime | None = None
    types: Sequence[str] | None = None
    results: Sequence[AlarmResult] | None = None
    building_id: int | None = None
    device: str | None = None  # part of the device uid


@dataclass(frozen=True, slots=True)
class HistoryRow:
    id: int
    community_id: int
    community_name: str
    device_id: int
    device_uid: str
    family: str
    building_name: str | None
    location_name: str | None
    type: str
    severity: str
    status: str
    first_at: datetime
    last_at: datetime
    cleared_at: datetime | None
    cleared_by: str | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    occurrences: int
    handling: HandlingStep | None
    result: AlarmResult | None
    result_comment: str | None
    time_zone: str
    # the same instants as wall-clock times of the community (for a report a person reads)
    first_local: datetime
    cleared_local: datetime | None


@dataclass(frozen=True, slots=True)
class HistoryPage:
    items: list[HistoryRow]
    next_cursor: str | None


_COLUMNS: LiteralString = """
    a.id, a.community_id, c.name AS community_name, a.device_id, d.uid AS device_uid, d.family,
    b.name AS building_name, l.name AS location_name, a.type, a.severity, a.status,
    a.first_at, a.last_at, a.cleared_at, a.cleared_by, a.acknowledged_at, a.acknowledged_by,
    a.occurrences, a.handling, a.result, r.comment AS result_comment, c.timezone AS time_zone,
    a.first_at AT TIME ZONE c.timezone AS first_local, a.cleared_at AT TIME ZONE c.timezone AS cleared_local
"""
_FROM: LiteralString = """
    FROM alarms a
    JOIN communities c ON c.id = a.community_id
    JOIN devices d ON d.id = a.device_id
    LEFT JOIN locations l ON l.id = d.location_id
    LEFT JOIN buildings b ON b.id = l.building_id
    LEFT JOIN LATERAL (
        SELECT t.comment FROM alarm_transitions t
        WHERE t.alarm_id = a.id AND t.action = 'resolved' ORDER BY t.id DESC LIMIT 1
    ) r ON true
"""
# Ended: cleared (by the device, the engine or a person), or closed by the handling workflow.
_ENDED: LiteralString = "(a.status = 'cleared' OR a.handling = 'closed')"


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _where(f: HistoryFilter) -> tuple[sql.Composable, list[Any]]:
    candidates: list[tuple[LiteralString, Any]] = [
        ("a.community_id = ANY(%s)", None if f.community_ids is None else list(f.community_ids)),
        ("a.first_at >= %s", f.since),
        ("a.first_at < %s", f.until),
        ("a.type = ANY(%s)", list(f.types) if f.types else None),
        ("a.result = ANY(%s)", list(f.results) if f.results else None),
        ("l.building_id = %s", f.building_id),
        ("d.uid ILIKE %s ESCAPE '\\'", _like(f.device) if f.device else None),
    ]
    used = [(clause, value) for clause, value in candidates if value is not None]
    clauses = [sql.SQL(_ENDED), *(sql.SQL(clause) for clause, _ in used)]
    return sql.SQL(" AND ").join(clauses), [value for _, value in used]


def _query(f: HistoryFilter, extra: LiteralString = "") -> tuple[sql.Composed, list[Any]]:
    where, params = _where(f)
    query = sql.SQL(
        "SELECT {cols} {from_} WHERE {where} {extra} ORDER BY a.first_at DESC, a.id DESC LIMIT %s"
    )
    return (
        query.format(cols=sql.SQL(_COLUMNS), from_=sql.SQL(_FROM), where=where, extra=sql.SQL(extra)),
        params,
    )


def _fetch(conn: psycopg.Connection[Any], query: sql.Composed, params: list[Any]) -> list[HistoryRow]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return [HistoryRow(**r) for r in cur.fetchall()]


def search(
    conn: psycopg.Connection[Any], f: HistoryFilter, *, cursor: str | None = None, limit: int = 100
) -> HistoryPage:
    """One page of the history, newest first (keyset on first_at, id)."""
    limit = max(1, min(limit, PAGE_LIMIT_MAX))
    extra: LiteralString = ""
    params_after: list[Any] = []
    if cursor is not None:
        extra = "AND (a.first_at, a.id) < (%s, %s)"
        params_after = list(_decode(cursor))
    query, params = _query(f, extra)
    rows = _fetch(conn, query, [*params, *params_after, limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return HistoryPage(rows, _encode(rows[-1].first_at, rows[-1].id) if more and rows else None)


def export(conn: psycopg.Connection[Any], f: HistoryFilter, *, max_rows: int) -> list[HistoryRow]:
    """Every matching row, newest first; `ExportTooLarge` when more than `max_rows` match."""
    query, params = _query(f)
    rows = _fetch(conn, query, [*params, max_rows + 1])
    if len(rows) > max_rows:
        where, count_params = _where(f)
        count = sql.SQL("SELECT count(*) {from_} WHERE {where}").format(from_=sql.SQL(_FROM), where=where)
        total = conn.execute(count, count_params).fetchone()
        raise ExportTooLarge(int(total[0]) if total else len(rows), max_rows)
    return rows


def _encode(first_at: datetime, alarm_id: int) -> str:
    return base64.urlsafe_b64encode(f"h|{first_at.isoformat()}|{alarm_id}".encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, int]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, first_at, alarm_id = text.split("|")
        at = datetime.fromisoformat(first_at)
        if kind != "h" or at.tzinfo is None:
            raise ValueError(kind)
        return at, int(alarm_id)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidCursor("invalid or foreign pagination cursor") from exc
