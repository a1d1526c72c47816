"""The alarm chart's vocabulary (issue 13 §6): every stored metric of every family model has a Chinese
and English name (devices/metrics.py), every threshold the chart draws resolves to a numeric alert
setting, and the pure trigger mapping picks the reading and the threshold that raised the alarm."""

from __future__ import annotations

import pytest

from alerts.config import AlertSettings
from alerts.thresholds import _RULES, Trigger, trigger_of
from devices.alarms import AlarmType
from devices.catalog import FAMILIES
from devices.contract import Channel, Family
from devices.metrics import METRICS, info
from devices.samples import message


@pytest.mark.parametrize("family", list(Family))
def test_every_metric_of_the_family_models_is_named(family: Family) -> None:
    spec = FAMILIES[family]
    body = spec.telemetry_message.model_validate(message(family, Channel.TELEMETRY))
    names = {name for name, _, _ in spec.points(body.data)}
    assert names, family
    missing = sorted(names - set(METRICS))
    assert missing == []
    assert all(METRICS[n].zh and METRICS[n].en and METRICS[n].zh != n for n in names)


def test_unknown_metric_keeps_its_name() -> None:
    assert (info("x_new").zh, info("x_new").unit) == ("x_new", "")


def test_every_rule_names_a_real_alarm_type_metric_and_numeric_setting() -> None:
    settings = AlertSettings()
    types = {t.value for t in AlarmType}
    for alarm_type, rules in _RULES.items():
        assert alarm_type in types
        for _, metric, setting, _ in rules:
            assert metric in METRICS, (alarm_type, metric)
            if setting:
                group, field = setting.split(".")
                assert isinstance(getattr(getattr(settings, group), field), float | int), setting


def test_trigger_from_settings_recorded_threshold_and_which_reading() -> None:
    s = AlertSettings().with_overrides({"ebike_charger": {"port_over_temp_c": 70.0}})
    assert trigger_of("charger_over_temperature", {"port": 3, "port_temp_c": 72.0}, s) == Trigger(
        "port_temp_c", 3, 70.0, "above", "ebike_charger.port_over_temp_c", "settings"
    )
    ambient = trigger_of("charger_over_temperature", {"ambient_temp_c": 66.0}, s)
    assert ambient is not None and (ambient.metric, ambient.channel) == ("ambient_temp_c", 0)
    # the threshold recorded when the alarm was raised wins over today's setting
    low = trigger_of("low_battery", {"value": 9.0, "threshold": 15.0}, s)
    assert low == Trigger("battery_pct", None, 15.0, "below", "smoke_alarm.low_battery_pct", "alarm")
    # gas: CO explains the alarm only when CO is over its own level
    gas = AlertSettings().gas_alarm
    over = trigger_of("gas_high_alarm", {"lel_pct": 5.0, "co_ppm": gas.co_high_ppm + 1}, AlertSettings())
    assert over is not None and (over.metric, over.threshold) == ("co_ppm", gas.co_high_ppm)
    lel = trigger_of("gas_high_alarm", {"lel_pct": 30.0, "co_ppm": 3.0}, AlertSettings())
    assert lel is not None and (lel.metric, lel.threshold) == ("lel_pct", gas.high_alarm_lel_pct)
    # a state with no threshold; an alarm no stored reading explains
    fire = trigger_of("fire_alarm", {}, s)
    assert fire is not None and (fire.metric, fire.threshold, fire.source) == ("alarm", None, None)
    assert trigger_of("door_held_open", {"open_s": 200}, s) is None
