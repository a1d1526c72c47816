"""The Grafana dashboards of Yiju, as code: the one builder module (Grafana foundation SDK, 11.6 types).

Two dashboards over two data sources with fixed uids (provisioned by `yiju grafana provision` or from
the files of `yiju grafana export`):
- **运维 / Operations** (`yiju-operations`, Prometheus + PostgreSQL): ingest rate, lag, dead letters,
  the database, TimescaleDB jobs and upkeep, the alert engine, the API.
- **物业 / Property company** (`yiju-property`, PostgreSQL): alarms by community and type, time to
  acknowledge, open faults, compliance rates, for the communities picked in `$community`.

Every PromQL expression is compiled by promtool and run by a real Prometheus, every SQL query runs
against the test database, and every dashboard round-trips through the SDK's types
(tests/test_grafana.py). The SQL lives in `storage/dashboard_queries.py`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Self

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import plugins, runtime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model

from storage import dashboard_queries as q

PROMETHEUS_UID = "yiju-prometheus"
POSTGRES_UID = "yiju-postgres"
POSTGRES_TYPE = "grafana-postgresql-datasource"  # Grafana 11's id of its built-in PostgreSQL plugin
PROM = model.DataSourceRef(type_val="prometheus", uid=PROMETHEUS_UID)
PG = model.DataSourceRef(type_val=POSTGRES_TYPE, uid=POSTGRES_UID)
FOLDER_UID = "yiju"
TAGS = ["yiju"]


# ---------------------------------------------------------------------------------------------
# The PostgreSQL query type, which the SDK does not ship: a typed Dataquery registered with its runtime


class PostgresQuery(cogvariants.Dataquery):
    def __init__(
        self,
        raw_sql: str = "",
        format_val: str = "table",
        ref_id: str = "",
        datasource: model.DataSourceRef | None = None,
    ) -> None:
        self.raw_sql = raw_sql
        self.format_val = format_val
        self.ref_id = ref_id
        self.datasource = datasource

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "refId": self.ref_id,
            "rawSql": self.raw_sql,
            "format": self.format_val,
            "rawQuery": True,
            "editorMode": "code",
        }
        if self.datasource is not None:
            out["datasource"] = self.datasource
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        ds = data.get("datasource")
        return cls(
            raw_sql=str(data.get("rawSql", "")),
            format_val=str(data.get("format", "table")),
            ref_id=str(data.get("refId", "")),
            datasource=model.DataSourceRef.from_json(ds) if isinstance(ds, dict) else None,
        )


class Sql(cogbuilder.Builder[cogvariants.Dataquery]):
    def __init__(self, query: q.PanelQuery, ref_id: str = "A") -> None:
        self._query = PostgresQuery(query.sql, "time_series" if query.time_series else "table", ref_id, PG)

    def build(self) -> cogvariants.Dataquery:
        return self._query


_registered = False


def register_types() -> None:
    """The SDK's panel and query types plus ours, for `Dashboard.from_json` (idempotent)."""
    global _registered  # noqa: PLW0603 - a one-time registration with the SDK's own singleton
    if not _registered:
        plugins.register_default_plugins()
        runtime.register_dataquery_variant(
            runtime.DataqueryConfig(identifier=POSTGRES_TYPE, from_json_hook=PostgresQuery.from_json)
        )
        _registered = True


# ---------------------------------------------------------------------------------------------
# Panels


def promql(expr: str, legend: str = "", ref_id: str = "A") -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend or "__auto").ref_id(ref_id).datasource(PROM)


def graph(title: str, unit: str, *targets: prometheus.Dataquery, description: str = "") -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .unit(unit)
        .datasource(PROM)
        .height(8)
        .span(12)
        .line_width(1)
        .fill_opacity(10)
    )
    if description:
        panel = panel.description(description)
    for target in targets:
        panel = panel.with_target(target)
    return panel


def single(
    title: str, unit: str, target: cogbuilder.Builder[cogvariants.Dataquery], ds: model.DataSourceRef
) -> stat.Panel:
    return stat.Panel().title(title).unit(unit).datasource(ds).with_target(target).height(4).span(6)


def rows(title: str, query: q.PanelQuery, span: int = 12, height: int = 9) -> table.Panel:
    return table.Panel().title(title).datasource(PG).with_target(Sql(query)).height(height).span(span)


def operations() -> model.Dashboard:
    d = (
        db.Dashboard("宜居 运维 / Yiju operations")
        .uid("yiju-operations")
        .tags(TAGS)
        .description("Ingest, engine, database and API health (docs/operations.md)")
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("browser")
    )
    d = d.with_row(db.Row("采集 / Ingest"))
    d = d.with_panel(
        graph(
            "消息速率 / Messages per second",
            "reqps",
            promql("sum by (family) (rate(yiju_ingest_received_total[5m]))", "{{family}}"),
            promql("sum(yiju:ingest_stored:rate5m)", "stored", "B"),
        )
    )
    d = d.with_panel(
        graph(
            "延迟 / Lag (p99)",
            "s",
            promql("max(yiju:ingest_publish_to_commit_seconds:p99_5m)", "device time → commit"),
            promql("max(yiju:ingest_write_seconds:p99_5m)", "commit", "B"),
            promql(
                "histogram_quantile(0.99, sum by (le) (rate(yiju_ingest_ack_lag_seconds_bucket[5m])))",
                "receipt → PUBACK",
                "C",
            ),
            description="Device time to commit includes the devices' clock offset.",
        )
    )
    d = d.with_panel(
        graph(
            "死信 / Dead letters by reason",
            "reqps",
            promql("sum by (reason) (yiju:ingest_dead_letters_by_reason:rate5m)", "{{reason}}"),
        )
    )
    d = d.with_panel(rows("死信明细 / Dead letters (database)", q.DEAD_LETTERS_BY_REASON, span=12, height=8))
    d = d.with_panel(
        single("待提交 / Held messages", "short", promql("sum(yiju_ingest_held_messages)"), PROM)
    )
    d = d.with_panel(
        single("MQTT 会话 / Broker sessions up", "short", promql("sum(yiju_ingest_broker_connected)"), PROM)
    )
    d = d.with_panel(single("数据库 / Database up", "short", promql("min(yiju_database_up)"), PROM))
    d = d.with_panel(
        single(
            "失败作业 / Failing TimescaleDB jobs", "short", promql("sum(yiju_timescaledb_job_failing)"), PROM
        )
    )
    d = d.with_row(db.Row("数据库与作业 / Database and jobs"))
    d = d.with_panel(
        graph(
            "数据库 / Database probe and write errors",
            "short",
            promql("max(yiju_database_probe_seconds)", "probe (s)"),
            promql("sum by (kind) (rate(yiju_ingest_db_errors_total[5m]))", "write errors/s {{kind}}", "B"),
        )
    )
    d = d.with_panel(
        graph(
            "维护 / Upkeep and TimescaleDB jobs",
            "s",
            promql("time() - max(yiju_upkeep_last_success_timestamp_seconds)", "since upkeep succeeded"),
            promql(
                "time() - max by (policy) (yiju_timescaledb_job_last_success_timestamp_seconds)",
                "since {{policy}} succeeded",
                "B",
            ),
        )
    )
    d = d.with_row(db.Row("告警引擎 / Alert engine"))
    d = d.with_panel(
        graph(
            "评估 / Evaluations and outputs",
            "ops",
            promql("sum(yiju:alerts_evaluated:rate5m)", "evaluated"),
            promql("sum(rate(yiju_alerts_alarms_raised_total[5m]))", "alarms raised", "B"),
            promql("sum(rate(yiju_alerts_timers_fired_total[5m]))", "timers fired", "C"),
        )
    )
    d = d.with_panel(
        graph(
            "队列 / Queue and back-pressure",
            "percentunit",
            promql("max(yiju:alerts_queue_fill:ratio)", "queue fill"),
            promql("sum(rate(yiju_alerts_backpressure_waits_total[5m]))", "back-pressure waits/s", "B"),
        )
    )
    d = d.with_row(db.Row("接口 / API"))
    d = d.with_panel(
        graph(
            "请求 / Requests by status",
            "reqps",
            promql("sum by (status) (yiju:api_requests_by_status:rate5m)", "{{status}}"),
        )
    )
    d = d.with_panel(
        graph(
            "延迟 / Latency p99 by route",
            "s",
            promql("topk(10, yiju:api_request_duration_seconds:p99_5m)", "{{route}}"),
            promql("sum(yiju_api_open_streams)", "open live streams", "B"),
        )
    )
    return d.build()


def community_variable() -> db.QueryVariable:
    return (
        db.QueryVariable("community")
        .label("小区 / Community")
        .datasource(PG)
        .query(q.COMMUNITIES.sql)
        .multi(True)
        .include_all(True)
        .refresh(model.VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
    )


def property_company() -> model.Dashboard:
    d = (
        db.Dashboard("宜居 物业 / Yiju property company")
        .uid("yiju-property")
        .tags(TAGS)
        .description("Alarms, time to acknowledge, open faults and compliance per community")
        .refresh("1m")
        .time("now-30d", "now")
        .timezone("browser")
        .with_variable(community_variable())
    )
    d = d.with_panel(
        stat.Panel()
        .title("未关闭告警 / Open alarms by severity")
        .datasource(PG)
        .with_target(Sql(q.OPEN_ALARMS_BY_SEVERITY))
        .height(5)
        .span(8)
    )
    d = d.with_panel(
        timeseries.Panel()
        .line_width(1)
        .fill_opacity(10)
        .title("告警趋势 / Alarms per hour by severity")
        .datasource(PG)
        .with_target(Sql(q.ALARMS_OVER_TIME))
        .height(5)
        .span(16)
    )
    d = d.with_panel(rows("告警 / Alarms by community and type", q.ALARMS_BY_COMMUNITY_AND_TYPE, span=12))
    d = d.with_panel(rows("响应 / Time to acknowledge (s)", q.TIME_TO_ACKNOWLEDGE, span=12))
    d = d.with_panel(rows("故障 / Open faults", q.OPEN_FAULTS, span=24, height=10))
    d = d.with_panel(rows("合规 / Compliance rates", q.COMPLIANCE_RATES, span=24))
    return d.build()


@dataclass(frozen=True)
class Built:
    uid: str
    title: str
    json: dict[str, Any]  # the dashboard model as Grafana's API and its file provisioning take it


def to_json(dashboard: model.Dashboard) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(dashboard, cls=JSONEncoder))
    return out


def dashboards() -> list[Built]:
    register_types()
    out = []
    for d in (operations(), property_company()):
        assert d.uid is not None
        assert d.title is not None
        out.append(Built(d.uid, d.title, to_json(d)))
    return out


def targets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every query of a dashboard's JSON (panels and rows' panels)."""
    found: list[dict[str, Any]] = []
    for panel in doc.get("panels", []):
        found.extend(panel.get("targets", []))
        for inner in panel.get("panels", []):
            found.extend(inner.get("targets", []))
    return found
