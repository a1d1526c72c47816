"""Query parameter types shared by the routers: times bounded at the schema (issue 10 §6).

A time must carry an offset and lie between 1970 and 2200: `until=0001-01-01T00:00:00Z` made
`until - 24 h` overflow (a 500) on telemetry, events and compliance. Out-of-range values are a 422
naming the field, like any other invalid input.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _bounded(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("needs a timezone offset, e.g. 2026-11-20T08:00:00+08:00")
    if not EARLIEST <= value <= LATEST:
        raise ValueError(f"must lie between {EARLIEST.year} and {LATEST.year}")
    return value


Time = Annotated[datetime, AfterValidator(_bounded)]
