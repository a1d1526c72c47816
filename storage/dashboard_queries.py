"""The SQL of the Grafana panels (yiju/grafana/dashboards.py), run by Grafana's PostgreSQL data source,
not by Yiju: plain SQL with Grafana's macros `$__timeFilter(col)` and `$__timeGroupAlias(col, 'step')`
and the multi-value variable `$community` (expanded by Grafana as a quoted list: `'c1','c2'`).

They read the registry, alarms, findings and dead letters, never the raw time series, so a dashboard
refresh stays cheap. tests/test_grafana.py runs each one against the test database with the macros
expanded the way Grafana 11 expands them and checks the columns of its result. Grafana's role needs
SELECT on these tables only (docs/operations.md, "Grafana").
"""

from __future__ import annotations

from dataclasses import dataclass

# Alarm types that say "this device (or part of it) is broken" rather than "something is happening":
# the property company's open-faults list. Every `*_fault` type plus these (devices.alarms.AlarmType).
FAULT_TYPES = (
    "device_offline",
    "sensor_implausible",
    "low_battery",
    "lamp_failure",
    "elevator_power_loss",
    "cctv_channel_offline",
    "cctv_recording_stopped",
    "cctv_recording_gap",
)
_FAULT = "(right(a.type, 6) = '_fault' OR a.type IN (" + ", ".join(f"'{t}'" for t in FAULT_TYPES) + "))"


@dataclass(frozen=True)
class PanelQuery:
    sql: str
    columns: tuple[str, ...]  # of the result, in order (checked by the tests)
    time_series: bool = False  # Grafana format "time_series" (time, metric, value) instead of "table"


COMMUNITIES = PanelQuery(
    "SELECT code AS __value, name AS __text FROM communities ORDER BY code", ("__value", "__text")
)

ALARMS_OVER_TIME = PanelQuery(
    """SELECT $__timeGroupAlias(a.first_at, '1h'), a.severity AS metric, count(*) AS value
FROM alarms a JOIN communities c ON c.id = a.community_id
WHERE $__timeFilter(a.first_at) AND c.code IN ($community)
GROUP BY 1, 2
ORDER BY 1, 2""",
    ("time", "metric", "value"),
    time_series=True,
)

ALARMS_BY_COMMUNITY_AND_TYPE = PanelQuery(
    """SELECT c.code AS community, a.type AS alarm_type, a.severity, count(*) AS alarms,
       count(*) FILTER (WHERE a.status = 'active') AS still_open
FROM alarms a JOIN communities c ON c.id = a.community_id
WHERE $__timeFilter(a.first_at) AND c.code IN ($community)
GROUP BY 1, 2, 3
ORDER BY alarms DESC, community, alarm_type""",
    ("community", "alarm_type", "severity", "alarms", "still_open"),
)

OPEN_ALARMS_BY_SEVERITY = PanelQuery(
    """SELECT a.severity AS metric, count(*) AS value
FROM alarms a JOIN communities c ON c.id = a.community_id
WHERE a.status = 'active' AND c.code IN ($community)
GROUP BY 1
ORDER BY 1""",
    ("metric", "value"),
)

TIME_TO_ACKNOWLEDGE = PanelQuery(
    """SELECT c.code AS community, a.severity, count(*) AS acknowledged,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM a.acknowledged_at - a.first_at))
           AS median_s,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM a.acknowledged_at - a.first_at))
           AS p90_s
FROM alarms a JOIN communities c ON c.id = a.community_id
WHERE a.acknowledged AND $__timeFilter(a.first_at) AND c.code IN ($community)
GROUP BY 1, 2
ORDER BY 1, 2""",
    ("community", "severity", "acknowledged", "median_s", "p90_s"),
)

OPEN_FAULTS = PanelQuery(  # only constants are formatted in: no input reaches this text
    f"""SELECT c.code AS community, d.uid AS device, d.family, a.type AS alarm_type, a.severity,
       a.first_at AS since, a.acknowledged
FROM alarms a
JOIN communities c ON c.id = a.community_id
JOIN devices d ON d.id = a.device_id
WHERE a.status = 'active' AND {_FAULT} AND c.code IN ($community)
ORDER BY a.first_at
LIMIT 500""",  # noqa: S608
    ("community", "device", "family", "alarm_type", "severity", "since", "acknowledged"),
)

COMPLIANCE_RATES = PanelQuery(
    """SELECT c.code AS community, f.check_name AS "check", count(*) AS findings,
       count(*) FILTER (WHERE f.compliant) AS compliant,
       round(100.0 * count(*) FILTER (WHERE f.compliant) / count(*), 1) AS compliant_pct
FROM compliance_findings f JOIN communities c ON c.id = f.community_id
WHERE $__timeFilter(f.observed_at) AND c.code IN ($community)
GROUP BY 1, 2
ORDER BY 1, 2""",
    ("community", "check", "findings", "compliant", "compliant_pct"),
)

DEAD_LETTERS_BY_REASON = PanelQuery(
    """SELECT reason, coalesce(family, 'unknown') AS family, count(*) AS messages, max(received_at) AS last
FROM dead_letters
WHERE $__timeFilter(received_at)
GROUP BY 1, 2
ORDER BY messages DESC""",
    ("reason", "family", "messages", "last"),
)
