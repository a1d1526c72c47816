"""Which reading raised an alarm and the threshold it crossed, for the alarm chart (issue 13 §6).

Pure: (alarm type, alarm details, the community's effective `AlertSettings`) → `Trigger`. The
threshold is the one the engine recorded when it raised the alarm (`details["threshold"]`, written by
`Out.hysteresis` / `low_hysteresis` in alerts/core/model.py, or `threshold_pct` of a CCTV disk alarm)
when there is one; otherwise the setting the rule compares against (alerts/core/*.py), read from the
community's settings as they are now — `source` says which, so the chart can say so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from alerts.config import AlertSettings


@dataclass(frozen=True, slots=True)
class Trigger:
    metric: str
    channel: int | None  # the port/channel of the reading; None: any (the first the device has)
    threshold: float | None
    direction: Literal["above", "below"] = "above"
    setting: str | None = None  # "<family>.<field>" of the AlertSettings the threshold comes from
    source: Literal["alarm", "settings"] | None = None


# alarm type → entries (details key, metric, setting path, direction); the first entry whose details
# key is present (None: always) wins — the key says which reading the rule saw (alerts/core/*.py).
_RULES: dict[str, tuple[tuple[str | None, str, str | None, Literal["above", "below"]], ...]] = {
    "charger_over_temperature": (
        ("ambient_temp_c", "ambient_temp_c", "ebike_charger.ambient_over_temp_c", "above"),
        ("cabinet_temp_c", "cabinet_temp_c", "ebike_charger.cabinet_over_temp_c", "above"),
        (None, "port_temp_c", "ebike_charger.port_over_temp_c", "above"),
    ),
    "charger_overload": (
        ("current_a", "current_a", "ebike_charger.port_current_limit_a", "above"),
        (None, "power_w", "ebike_charger.port_power_limit_w", "above"),
    ),
    "charger_leakage": ((None, "leakage_ma", "ebike_charger.leakage_trip_ma", "above"),),
    "charger_smoke": ((None, "smoke", None, "above"),),
    "charger_short_circuit": ((None, "current_a", None, "above"),),
    "gas_high_alarm": (
        ("co_ppm", "co_ppm", "gas_alarm.co_high_ppm", "above"),
        (None, "lel_pct", "gas_alarm.high_alarm_lel_pct", "above"),
    ),
    "gas_low_alarm": (
        ("co_ppm", "co_ppm", "gas_alarm.co_low_ppm", "above"),
        (None, "lel_pct", "gas_alarm.low_alarm_lel_pct", "above"),
    ),
    "fire_alarm": ((None, "alarm", None, "above"),),
    "electrical_fire_residual_current": (
        (None, "residual_current_ma", "smoke_alarm.residual_current_alarm_ma", "above"),
    ),
    "electrical_fire_cable_temperature": ((None, "cable_temp_c", "smoke_alarm.cable_temp_alarm_c", "above"),),
    "low_battery": ((None, "battery_pct", "smoke_alarm.low_battery_pct", "below"),),
    "lamp_failure": ((None, "current_a", None, "above"),),
    "elevator_overspeed": ((None, "speed_mps", None, "above"),),
    "elevator_trapped": ((None, "floor", None, "above"),),
    "cctv_retention_short": ((None, "recorded_days", "cctv_recorder.retention_days", "below"),),
}


def _setting(settings: AlertSettings, path: str) -> float | None:
    group, field = path.split(".")
    value = getattr(getattr(settings, group), field, None)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def trigger_of(alarm_type: str, details: dict[str, Any], settings: AlertSettings) -> Trigger | None:
    """The reading behind the alarm and its threshold; None when no stored metric explains it."""
    rules = _RULES.get(alarm_type)
    if not rules:
        return None
    port = details.get("port")
    channel = port if isinstance(port, int) and not isinstance(port, bool) else None
    for needs, metric, setting, direction in rules:
        if needs is not None and needs not in details:
            continue
        if needs == "co_ppm" and setting:  # gas: CO explains the alarm only when it is over its own level
            co = _number(details.get("co_ppm"))
            limit = _setting(settings, setting)
            if co is None or limit is None or co < limit:
                continue
        if metric in {"ambient_temp_c", "cabinet_temp_c", "leakage_ma", "smoke"}:
            channel = 0  # the post's own readings are channel 0 (ebike_charger.points)
        recorded = _number(details.get("threshold"))
        if recorded is not None and setting is not None:
            return Trigger(metric, channel, recorded, direction, setting, "alarm")
        configured = _setting(settings, setting) if setting else None
        source: Literal["alarm", "settings"] | None = "settings" if configured is not None else None
        return Trigger(metric, channel, configured, direction, setting, source)
    return None
