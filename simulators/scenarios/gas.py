"""Gas detectors: a high alarm and its valve (closing or failing), the motor valve, warm-up after a power
cut, the device's own alarm below the threshold."""

from __future__ import annotations

from datetime import datetime

from devices.alarms import AlarmType, Check
from devices.contract import Family
from devices.families import gas_alarm
from simulators.scenarios.builder import SLACK_S, Builder, Factory, Picker, registrar
from simulators.scenarios.truth import Scenario

A = AlarmType
GAS = gas_alarm.DEFAULTS

SCENARIOS: dict[str, Factory] = {}
scenario = registrar(SCENARIOS)


def _gas(p: Picker, start: datetime, *, valve_closes: bool) -> Scenario:
    name = "gas_high_valve_closes" if valve_closes else "gas_high_valve_fails"
    b = Builder(
        name,
        p.compound,
        start,
        "Kitchen gas rises to 30 %LEL (low alarm) then 55 %LEL (high alarm); "
        + (
            "the shut-off valve closes 1 s later: compliant linkage."
            if valve_closes
            else "the valve never closes: critical linkage_failed and a non-compliant linkage finding."
        ),
    )
    g = b.script(p.take(Family.GAS_ALARM, lambda d: d.valve))
    low, high = GAS.low_alarm_lel_pct + 5, GAS.high_alarm_lel_pct + 5
    g.event(60, type="low", gas="combustible", lel_pct=low).tele(60, state="low_alarm", lel_pct=low)
    g.event(120, type="high", gas="combustible", lel_pct=high).tele(120, state="high_alarm", lel_pct=high)
    b.alarm(A.GAS_LOW_ALARM, g.uid, 60)
    b.alarm(A.GAS_HIGH_ALARM, g.uid, 120)
    if valve_closes:
        g.event(121, type="valve_closed", by="alarm").tele(121, valve="closed")
        b.finding(Check.LINKAGE, "valve_close", g.uid, True, 121)
    else:
        due = 120 + GAS.valve_close_deadline_s
        g.tele(130)
        b.alarm(A.LINKAGE_FAILED, g.uid, due, due + SLACK_S)
        b.finding(Check.LINKAGE, "valve_close", g.uid, False, due, due + SLACK_S)
    g.event(600, type="cleared", gas="combustible").tele(600, state="normal", lel_pct=2.0)
    g.tele(900)
    return b.build()


@scenario("gas_high_valve_closes")
def gas_high_valve_closes(p: Picker, start: datetime) -> Scenario:
    return _gas(p, start, valve_closes=True)


@scenario("gas_high_valve_fails")
def gas_high_valve_fails(p: Picker, start: datetime) -> Scenario:
    return _gas(p, start, valve_closes=False)


@scenario("gas_motor_valve")
def gas_motor_valve(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "gas_motor_valve",
        p.compound,
        start,
        "Kitchen gas at 55 %LEL (high alarm); the motorised shut-off valve is told to close at once and "
        f"reports closed 20 s later, inside the {GAS.valve_close_deadline_s:.0f} s valve deadline (the "
        "3 s of GB 50166 are for the close signal): compliant linkage, no linkage_failed.",
    )
    g = b.script(p.take(Family.GAS_ALARM, lambda d: d.valve))
    high = GAS.high_alarm_lel_pct + 5
    g.event(120, type="high", gas="combustible", lel_pct=high).tele(120, state="high_alarm", lel_pct=high)
    g.tele(130)
    g.event(140, type="valve_closed", by="alarm").tele(140, valve="closed")
    g.event(600, type="cleared", gas="combustible").tele(600, state="normal", lel_pct=2.0)
    b.alarm(A.GAS_HIGH_ALARM, g.uid, 120)
    b.alarm(A.GAS_LOW_ALARM, g.uid, 120)  # 55 %LEL is over the first level too
    b.finding(Check.LINKAGE, "valve_close", g.uid, True, 140)
    return b.build()


@scenario("gas_warmup_after_power_cut")
def gas_warmup_after_power_cut(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "gas_warmup_after_power_cut",
        p.compound,
        start,
        "After a building power cut a kitchen gas alarm powers on and warms up, its sensor reading "
        "70 %LEL and 300 ppm CO meanwhile: readings in warm-up are not gas readings — no alarm, no "
        "valve closed, no linkage_failed.",
    )
    g = b.script(p.take(Family.GAS_ALARM, lambda d: d.valve))
    for at in (2, 30, 60, 90):
        g.tele(at, state="warmup", lel_pct=70.0, co_ppm=300.0)
    g.tele(120, state="normal", lel_pct=1.0, co_ppm=2.0)
    g.tele(120 + GAS.heartbeat_s)
    return b.build()


@scenario("gas_device_alarm_below_threshold")
def gas_device_alarm_below_threshold(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "gas_device_alarm_below_threshold",
        p.compound,
        start,
        "A detector without a valve raises its own high alarm at 35 %LEL (under Yiju's 50 %LEL) and "
        "reports high_alarm every minute for 10 minutes: one gas_high_alarm and one gas_low_alarm, "
        "no clear and re-raise on every report.",
    )
    g = b.script(p.take(Family.GAS_ALARM, lambda d: not d.valve))
    g.event(60, type="high", gas="combustible", lel_pct=35.0)
    for at in range(60, 660, 60):
        g.tele(at, state="high_alarm", lel_pct=35.0, co_ppm=20.0)
    g.event(660, type="cleared", gas="combustible").tele(660, state="normal", lel_pct=1.0)
    b.alarm(A.GAS_HIGH_ALARM, g.uid, 60)
    b.alarm(A.GAS_LOW_ALARM, g.uid, 60)
    return b.build()
