"""The one settings class of Yiju.

Built once by the composition root (`yiju.cli.main`, the API lifespan, the test harness) and passed
down; never read at import time. Environment variables use the prefix `YIJU_` and `__` between nested
groups, e.g. `YIJU_DATABASE__URL=postgresql://…`, `YIJU_MQTT__URL=mqtt://…`.

This module composes: each group lives with the package it configures (`storage.config`,
`ingest.config`, `alerts.config`, `alerts.escalation.config`), so a package reads its own settings
without importing the others; the groups of the API, MQTT and metrics live here. Safety thresholds of
the alert engine are in `alerts.config` and each default cites its source in
`../shared/spec/standards.md`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from alerts.config import AlertSettings
from alerts.escalation.config import LinkageSettings
from ingest.config import IngestSettings
from storage.config import DatabaseSettings
from yiju.scaleout.config import ScaleSettings

# The groups of other packages, re-exported: callers build `Settings(database=DatabaseSettings(...))`.
__all__ = [
    "AlertSettings", "ApiSettings", "DatabaseSettings", "IngestSettings", "LinkageSettings",
    "MetricsSettings", "MqttSettings", "Settings", "unknown_environment",
]  # fmt: skip


class MqttSettings(BaseModel):
    """The MQTT 5 broker."""

    url: str | None = Field(
        default=None,
        description="mqtt://user:password@host:port, or mqtts://… for TLS (port 8883 by default). "
        "Unset: a private Mosquitto under the state directory.",
    )
    ca_file: Path | None = Field(
        default=None,
        description="mqtts:// only: the CA certificate (PEM) that must have signed the broker's certificate "
        "(pinned: the system trust store is not used). Unset: the system trust store.",
    )
    topic_prefix: str = Field(default="yiju", pattern=r"^[A-Za-z0-9_\-]+$")
    client_id: str = Field(default="yiju-ingest")
    shared_group: str = Field(default="yiju-ingest", pattern=r"^[A-Za-z0-9_\-]+$")
    keepalive_s: int = Field(default=30, ge=5)
    session_expiry_s: int = Field(
        default=7 * 24 * 3600,
        description="How long the broker keeps the ingest session (and queues QoS 1 messages) while away.",
    )
    connect_timeout_s: float = Field(default=5.0, gt=0)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in {"mqtt", "tcp", "mqtts", "ssl"}:
            raise ValueError("MQTT URL must start with mqtt:// or mqtts://")
        return value


class ApiSettings(BaseModel):
    """The HTTP API and the live console."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    token_ttl: timedelta = Field(
        default=timedelta(hours=12), description="Lifetime of a login token (one duty shift)."
    )
    stream_heartbeat_s: float = Field(
        default=15.0, gt=0, description="Live alarm stream: keep-alive comment interval when idle."
    )
    # Hardening limits (issue 10). No standard in standards.md sets these; the defaults are [V]
    # practice (OWASP authentication and denial-of-service guidance), sized for a duty room.
    stream_max_per_user: int = Field(
        default=5, ge=1, description="Open live streams per user (a board, a phone, a spare); more → 429."
    )
    stream_max_total: int = Field(
        default=200, ge=1, description="Open live streams per API process; more → 429 with Retry-After."
    )
    login_max_failures_per_user: int = Field(
        default=5, ge=1, description="Failed logins per username within login_window before 429."
    )
    login_max_failures_per_address: int = Field(
        default=20, ge=1, description="Failed logins per client address within login_window before 429."
    )
    login_window: timedelta = Field(
        default=timedelta(minutes=15), description="Window of the login failure counts (and the lockout)."
    )
    login_max_concurrent_hashes: int = Field(
        default=2,
        ge=1,
        description="Password hashes (scrypt, ~32 MiB and ~50-100 ms each) computed at once; the rest wait.",
    )
    login_hash_wait_s: float = Field(
        default=2.0, gt=0, description="How long a login waits for a hashing slot before 429."
    )
    statement_timeout_s: float = Field(
        default=10.0, gt=0, description="Server-side timeout of every API statement (503 when reached)."
    )
    request_deadline_s: float = Field(
        default=15.0,
        gt=0,
        description="A request with no response by then gets 503 (a frozen database); streams once started "
        "and the CSV import are exempt.",
    )
    token_purge_interval: timedelta = Field(
        default=timedelta(hours=1), description="How often the API deletes login tokens expired a day ago."
    )
    export_max_rows: int = Field(
        default=5_000,
        ge=1,
        le=1_000_000,
        description="Rows of one alarm-history export (CSV/XLSX); more → 422 asking to narrow the filters. "
        "Sized to the request deadline: the XLSX of 5,000 rows took 12.8 s on 2 cores at load 14 "
        "(bench/alarm_export.py); a week of a large compound's ended alarms fits.",
    )


class MetricsSettings(BaseModel):
    """Prometheus `/metrics` of `yiju run`, `yiju api` and `yiju demo` (`yiju ingest` workers use
    `ingest.metrics_port`, one port per worker). Loopback by default: the series name communities."""

    host: str = Field(default="127.0.0.1", description="Listen address of the /metrics server.")
    port: int = Field(default=9107, ge=0, le=65_535, description="Port of the /metrics server; 0 = off.")


class Settings(BaseSettings):
    """Everything configurable in Yiju. Build once with `Settings()` and pass it down."""

    model_config = SettingsConfigDict(
        env_prefix="YIJU_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    state_dir: Path = Field(
        default=Path(".yiju"),
        description="Where embedded services keep their data (private PostgreSQL cluster, Mosquitto).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    linkage: LinkageSettings = Field(default_factory=LinkageSettings)
    scale: ScaleSettings = Field(default_factory=ScaleSettings)


# Variables with our prefix that are read by something other than Settings.
_NOT_SETTINGS = ("YIJU_TEST_", "YIJU_EXTRA_APT", "YIJU_BENCH_")


def unknown_environment(environ: Mapping[str, str]) -> list[str]:
    """`YIJU_*` variables that match no setting — usually a typo that would otherwise be ignored."""
    unknown: list[str] = []
    for key in environ:
        if not key.startswith("YIJU_") or key.startswith(_NOT_SETTINGS):
            continue
        parts = key[len("YIJU_") :].lower().split("__")
        field = Settings.model_fields.get(parts[0])
        if field is None:
            unknown.append(key)
            continue
        group = field.annotation
        if len(parts) > 1 and not (
            isinstance(group, type) and issubclass(group, BaseModel) and parts[1] in group.model_fields
        ):
            unknown.append(key)
    return sorted(unknown)
