"""The report period: `2026-11-01..2026-11-30` (whole local days, both included, in the community's time
zone) or, by default, the 30 days ending now (indicators.md §5)."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from yiju.errors import InputError

DEFAULT_DAYS = 30
MAX_DAYS = 400
_RANGE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})$")


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("Asia/Shanghai")


def parse_period(text: str | None, timezone: str, now: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the period; InputError with the expected form for anything else."""
    if not text:
        return now - timedelta(days=DEFAULT_DAYS), now
    m = _RANGE.match(text.strip())
    if not m:
        raise InputError(f"period must look like 2026-11-01..2026-11-30, got {text[:40]!r}")
    try:
        first, last = date.fromisoformat(m.group(1)), date.fromisoformat(m.group(2))
    except ValueError as exc:
        raise InputError(f"period: {exc}") from None
    if last < first or (last - first).days + 1 > MAX_DAYS:
        raise InputError(f"period: the last day must not precede the first, at most {MAX_DAYS} days")
    tz = zone(timezone)
    start = datetime(first.year, first.month, first.day, tzinfo=tz)
    end = datetime(last.year, last.month, last.day, tzinfo=tz) + timedelta(days=1)
    return start, end
