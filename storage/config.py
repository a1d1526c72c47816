"""The settings of the storage layer, on their own floor: `yiju.settings.Settings` composes this group
as `database`, and storage reads it without importing anything above itself (issue 17 item 1)."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator

TimeseriesMode = Literal["auto", "timescaledb", "partitioned"]


class DatabaseSettings(BaseModel):
    """PostgreSQL (with TimescaleDB when available)."""

    url: str | None = Field(
        default=None,
        description="libpq URL of the database. Unset: a private cluster under the state directory.",
    )
    pool_min_size: int = Field(default=1, ge=1)
    pool_max_size: int = Field(default=8, ge=1)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    timeseries_mode: TimeseriesMode = Field(
        default="auto",
        description="auto: hypertables when the timescaledb extension can be created, else partitions.",
    )
    chunk_interval: timedelta = Field(
        default=timedelta(days=1), description="Hypertable chunk / native partition width."
    )
    compress_after: timedelta = Field(
        default=timedelta(days=7), description="TimescaleDB only: compress chunks older than this."
    )
    telemetry_retention: timedelta = Field(
        default=timedelta(days=90),
        description="Raw telemetry and numeric points are dropped after this; hourly rollups are kept.",
    )
    events_retention: timedelta = Field(
        # GB 50396-2007 §5.2.2(3) [S]: the central host keeps access-control events for at least
        # 180 days; a year and a month covers that and a yearly assessment period.
        default=timedelta(days=400),
        description="Device events are kept at least this long (≥ 180 d per GB 50396-2007 §5.2.2(3)).",
    )
    rollup_retention: timedelta = Field(default=timedelta(days=800))
    partitions_ahead: int = Field(
        default=3, ge=1, description="Native-partition mode: partitions created ahead of now."
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in {"postgresql", "postgres"}:
            raise ValueError("database URL must start with postgresql://")
        return value
