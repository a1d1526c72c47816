"""`yiju doctor`: what is there, what is missing, in plain words — one line per check."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from ingest.mqtt_adapter import probe_broker
from storage.migrate import pending
from storage.status import community_alert_overrides, database_status
from storage.tsdb import policy_jobs
from yiju.errors import YijuError
from yiju.parameters import unsourced_defaults
from yiju.scaleout.jetstream import JetStreamLink
from yiju.scaleout.subjects import stream_name
from yiju.settings import Settings
from yiju.stack import resolve


@dataclass(frozen=True)
class Check:
    ok: bool
    name: str
    message: str
    warn: bool = False  # worth reading, not a failure (the exit status stays 0)

    def line(self) -> str:
        status = "FAIL" if not self.ok else "warn" if self.warn else "ok  "
        return f"{status}  {self.name:<10} {self.message}"


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 5432}{parts.path}"


def run_checks(settings: Settings) -> list[Check]:
    try:
        endpoints = resolve(settings)
    except YijuError as exc:
        return [Check(False, "config", str(exc))]
    checks = [Check(True, "config", f"endpoints from {endpoints.source}")]
    checks.extend(_database_checks(endpoints.database_url))
    if checks[-1].ok and checks[-1].name == "schema":
        checks.extend(_default_checks(endpoints.database_url, settings))
    try:
        checks.append(
            Check(
                True,
                "broker",
                probe_broker(
                    endpoints.mqtt_url, settings.mqtt.connect_timeout_s, ca_file=settings.mqtt.ca_file
                ),
            )
        )
    except YijuError as exc:
        checks.append(Check(False, "broker", str(exc)))
    if settings.scale.mode == "jetstream":
        checks.append(jetstream_check(settings))
    return checks


def jetstream_check(settings: Settings) -> Check:
    """Scale-out mode: the cluster answers, the ingest stream exists, and what waits in it per partition
    (a backlog that grows is a worker missing or too slow: docs/scale-out.md)."""
    scale = settings.scale
    link = JetStreamLink(
        scale.nats_url,
        name="yiju-doctor",
        ca_file=scale.nats_ca_file,
        credentials_file=scale.nats_credentials_file,
    )
    stream = stream_name(settings.mqtt.topic_prefix)
    try:
        link.start(timeout_s=settings.mqtt.connect_timeout_s)
        state = link.stream_state(stream)
        if state is None:
            return Check(False, "jetstream", f"no stream {stream}: start `yiju bridge` (it creates it)")
        messages, replicas = state
        waiting: list[str] = []
        missing: list[int] = []
        for n in range(scale.partitions):
            consumer = link.consumer_state(stream, f"p{n}")
            if consumer is None:
                missing.append(n)
            elif consumer.pending or consumer.ack_pending:
                waiting.append(f"p{n} {consumer.pending} waiting, {consumer.ack_pending} unacked")
    except YijuError as exc:
        return Check(False, "jetstream", str(exc))
    finally:
        link.stop()
    detail = f"stream {stream}: {messages} messages, R{replicas}, {scale.partitions} partitions"
    if missing:
        return Check(
            True,
            "jetstream",
            f"{detail}; never taken by a worker: {', '.join(f'p{n}' for n in missing)}",
            warn=True,
        )
    return Check(True, "jetstream", f"{detail}; " + ("; ".join(waiting) if waiting else "no backlog"))


def _default_checks(url: str, settings: Settings) -> list[Check]:
    """standards.md §0: a [NOT FOUND] value is a required setting. One warning line per group of
    communities that run on the same unsourced defaults (docs/rules.md lists them)."""
    try:
        communities = community_alert_overrides(url)
    except YijuError as exc:
        return [Check(False, "defaults", str(exc))]
    groups: dict[tuple[str, ...], list[str]] = {}
    for code, overrides in communities:
        keys = tuple(p.override_key for p in unsourced_defaults(settings.alerts, overrides))
        if keys:
            groups.setdefault(keys, []).append(code)
    checks = []
    for keys, codes in groups.items():
        shown = ", ".join(codes[:5]) + (f" and {len(codes) - 5} more" if len(codes) > 5 else "")
        # A warning, so the wording must not call them "required": the rules run on these defaults;
        # what is missing is a source, and standards.md §0 asks the site to confirm and set each one.
        who = f"1 community ({shown}) runs" if len(codes) == 1 else f"{len(codes)} communities ({shown}) run"
        what = "1 default" if len(keys) == 1 else f"{len(keys)} defaults"
        checks.append(
            Check(
                True,
                "defaults",
                f"{who} on {what} that no source confirms ([NOT FOUND], standards.md §0): the rules use "
                "them, but the site should confirm each value and set it under communities.settings.alerts "
                f"(docs/rules.md): {', '.join(keys)}",
                warn=True,
            )
        )
    if communities and not checks:
        checks.append(Check(True, "defaults", "every community sets its unsourced rule parameters"))
    return checks


def _job_checks(url: str, now: datetime) -> list[Check]:
    """A policy that has not succeeded within twice its schedule interval fails, named with its last
    error (issue 14: every scheduled run failed on PostgreSQL 15.20 and nothing said so)."""
    try:
        jobs = policy_jobs(url)
    except YijuError as exc:
        return [Check(False, "jobs", str(exc))]
    overdue = [job for job in jobs if job.overdue(now)]
    if not overdue:
        ok = f"{len(jobs)} TimescaleDB policies: none has gone twice its interval without succeeding"
        return [Check(True, "jobs", ok)]
    return [Check(False, "jobs", job.describe(now)) for job in overdue]


def _database_checks(url: str) -> list[Check]:
    try:
        status = database_status(url)
    except YijuError as exc:
        return [Check(False, "database", str(exc))]
    checks = [Check(True, "database", f"PostgreSQL {status.server_version} at {_where(url)}")]
    if status.timescaledb_version is None:
        ext = "timescaledb extension not installed (native partitioning will be used)"
    elif not status.timescaledb_preloaded:
        ext = (
            f"timescaledb {status.timescaledb_version} installed but not in shared_preload_libraries "
            "(native partitioning will be used)"
        )
    else:
        ext = f"timescaledb {status.timescaledb_version} available"
    checks.append(Check(True, "timescale", ext))
    if status.storage_mode is None:
        checks.append(Check(False, "schema", "not migrated: run `yiju db migrate`"))
        return checks
    checks.append(Check(True, "storage", f"mode {status.storage_mode}: {status.storage_mode_reason}"))
    if status.storage_mode == "timescaledb":
        checks.extend(_job_checks(url, datetime.now(UTC)))
    try:
        todo = pending(url)
    except YijuError as exc:
        checks.append(Check(False, "schema", str(exc)))
        return checks
    if todo:
        names = ", ".join(f"{m.version:04d}_{m.name}" for m in todo)
        checks.append(
            Check(False, "schema", f"{len(todo)} migration(s) pending: {names}; run `yiju db migrate`")
        )
    else:
        checks.append(Check(True, "schema", "up to date"))
    return checks
