"""One report for one community and period: the extract read from storage, the settings resolved
(defaults ← the community's overrides ← this request's), the report built. Used by the API and the CLI."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from alerts.indicators.config import IndicatorSettings
from alerts.indicators.report import Report, build
from storage import indicators
from storage.db import Connection


def make_report(
    conn: Connection,
    community_id: int,
    start: datetime,
    end: datetime,
    *,
    now: datetime,
    overrides: dict[str, Any] | None = None,
) -> Report:
    settings = IndicatorSettings().with_overrides(indicators.overrides(conn, community_id))
    settings = settings.with_overrides(overrides)
    return build(indicators.extract(conn, community_id, start, end), settings, now)
